package config

import (
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func lookupFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaultsAreValidForDev(t *testing.T) {
	require.NoError(t, Defaults().Validate(false))
	require.Error(t, Defaults().Validate(true), "outside dev a secret key is required")
}

func TestFromEnvOverlays(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	c, err := fromLookup(lookupFrom(map[string]string{
		"DIRSYNC_LISTEN":           ":9999",
		"DIRSYNC_SECRET_KEY":       key,
		"DIRSYNC_PLAYGROUND":       "true",
		"DIRSYNC_ALLOWED_ORIGINS":  "https://a.example, https://b.example",
		"DIRSYNC_SHUTDOWN_TIMEOUT": "3s",
		"DIRSYNC_LOG_LEVEL":        "debug",
	}))
	require.NoError(t, err)
	require.Equal(t, ":9999", c.Listen)
	require.Len(t, c.SecretKey, 32)
	require.True(t, c.Playground)
	require.Equal(t, []string{"https://a.example", "https://b.example"}, c.AllowedOrigins)
	require.Equal(t, 3*time.Second, c.ShutdownTimeout)
	require.Equal(t, slog.LevelDebug, c.LogLevel)
	require.NoError(t, c.Validate(true))
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	_, err := fromLookup(lookupFrom(map[string]string{
		"DIRSYNC_PLAYGROUND":       "maybe",
		"DIRSYNC_COMPLEXITY_LIMIT": "lots",
		"DIRSYNC_SECRET_KEY":       "%%%",
	}))
	require.Error(t, err)
	for _, name := range []string{"DIRSYNC_PLAYGROUND", "DIRSYNC_COMPLEXITY_LIMIT", "DIRSYNC_SECRET_KEY"} {
		require.Contains(t, err.Error(), name)
	}

	c := Defaults()
	c.DatabaseURL = "mysql://x"
	c.RedisURL = "http://x"
	c.SecretKey = []byte("short")
	err = c.Validate(false)
	require.Error(t, err)
	require.Equal(t, 3, strings.Count(err.Error(), "\n")+1)
}

func TestRedisDBOverridesTheURLsDatabase(t *testing.T) {
	c, err := fromLookup(lookupFrom(map[string]string{
		"DIRSYNC_REDIS_URL": "redis://:pw@cache.internal:6380/2?dial_timeout=3s",
		"DIRSYNC_REDIS_DB":  "7",
	}))
	require.NoError(t, err)
	require.NoError(t, c.Validate(false))
	require.Equal(t, 7, c.RedisNamespace())
	require.Equal(t, "redis://:pw@cache.internal:6380/7?dial_timeout=3s", c.RedisConnURL())

	c, err = fromLookup(lookupFrom(map[string]string{"DIRSYNC_REDIS_URL": "redis://cache.internal:6380/2"}))
	require.NoError(t, err)
	require.Equal(t, 2, c.RedisNamespace(), "unset: the URL's database")
	require.Equal(t, "redis://cache.internal:6380/2", c.RedisConnURL())
	require.Equal(t, 0, Defaults().RedisNamespace())

	_, err = fromLookup(lookupFrom(map[string]string{"DIRSYNC_REDIS_DB": "two"}))
	require.ErrorContains(t, err, "DIRSYNC_REDIS_DB")
	c = Defaults()
	c.RedisDB = -5
	require.ErrorContains(t, c.Validate(false), "DIRSYNC_REDIS_DB")
}

func TestHTTPLimitsAndEgressFromEnv(t *testing.T) {
	c, err := fromLookup(lookupFrom(map[string]string{
		"DIRSYNC_HTTP_READ_HEADER_TIMEOUT":  "2s",
		"DIRSYNC_HTTP_READ_TIMEOUT":         "20s",
		"DIRSYNC_HTTP_WRITE_TIMEOUT":        "90s",
		"DIRSYNC_HTTP_IDLE_TIMEOUT":         "1m",
		"DIRSYNC_HTTP_MAX_HEADER_BYTES":     "32768",
		"DIRSYNC_ALLOW_INSECURE_GRAPH_URLS": "true",
	}))
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, c.HTTPReadHeaderTimeout)
	require.Equal(t, 20*time.Second, c.HTTPReadTimeout)
	require.Equal(t, 90*time.Second, c.HTTPWriteTimeout)
	require.Equal(t, time.Minute, c.HTTPIdleTimeout)
	require.Equal(t, 32768, c.HTTPMaxHeaderBytes)
	require.True(t, c.AllowInsecureGraphURLs)
	require.False(t, Defaults().AllowInsecureGraphURLs, "off unless asked for")

	_, err = fromLookup(lookupFrom(map[string]string{"DIRSYNC_HTTP_READ_TIMEOUT": "soon", "DIRSYNC_HTTP_WRITE_TIMEOUT": "-1s"}))
	require.ErrorContains(t, err, "DIRSYNC_HTTP_READ_TIMEOUT")
	require.ErrorContains(t, err, "DIRSYNC_HTTP_WRITE_TIMEOUT")
	c = Defaults()
	c.HTTPMaxHeaderBytes = 1 << 30
	require.ErrorContains(t, c.Validate(false), "DIRSYNC_HTTP_MAX_HEADER_BYTES")
}
