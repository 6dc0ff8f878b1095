package graphsim

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// The emulator must never be the bottleneck of a later benchmark: these
// report the requests per second it serves over real loopback HTTP.

func benchEnv(b *testing.B) (*env, *http.Client) {
	sim := New(Config{DisableThrottling: true})
	srv := newBenchServer(b, sim)
	creds, err := sim.Bootstrap("contoso", "contoso.com")
	if err != nil {
		b.Fatal(err)
	}
	if err := sim.SeedUsers(creds.TenantID, 1000); err != nil {
		b.Fatal(err)
	}
	e := &env{t: b, sim: sim, srv: srv, creds: creds}
	e.tok = e.token(creds.TenantID, creds.ClientID, creds.ClientSecret)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	return e, client
}

func benchRequest(b *testing.B, client *http.Client, e *env, method, path string, body func() io.Reader, want int) {
	b.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+"/v1.0"+path, body())
	req.Header.Set("Authorization", "Bearer "+e.tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != want {
		b.Fatalf("%s %s: %d", method, path, res.StatusCode)
	}
}

func reportRPS(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkGetUser(b *testing.B) {
	e, client := benchEnv(b)
	noBody := func() io.Reader { return nil }
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchRequest(b, client, e, "GET", "/users/seed.user.7@contoso.com", noBody, 200)
		}
	})
	reportRPS(b)
}

func BenchmarkCreateUser(b *testing.B) {
	e, client := benchEnv(b)
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := strconv.FormatInt(n.Add(1), 10)
			body := func() io.Reader {
				return strings.NewReader(`{"accountEnabled":true,"displayName":"B ` + i + `","mailNickname":"b` + i +
					`","userPrincipalName":"b` + i + `@contoso.com","passwordProfile":{"password":"xWwvJ]6NMw+bWH-d"}}`)
			}
			benchRequest(b, client, e, "POST", "/users", body, 201)
		}
	})
	reportRPS(b)
}

func BenchmarkListUsersPage(b *testing.B) {
	e, client := benchEnv(b)
	noBody := func() io.Reader { return nil }
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchRequest(b, client, e, "GET", "/users?$top=100&$select=id,userPrincipalName", noBody, 200)
		}
	})
	reportRPS(b)
}
