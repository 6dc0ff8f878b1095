package live_test

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/api"
	"github.com/dirsync/dirsync/internal/pubsub"
	"github.com/dirsync/dirsync/internal/server"
)

// The real API behind the real http.Server: a client without an API key
// that sends its body a byte at a time is cut off once the read timeout
// has passed, whether it asks for JSON or for an SSE stream.
func TestSlowBodyWithoutKeyIsCutOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	limits := server.Limits{ReadTimeout: 300 * time.Millisecond}
	p := e.apiServer(api.Config{}, pubsub.HubConfig{}, &limits)
	u, err := url.Parse(p.url)
	require.NoError(t, err)
	for _, accept := range []string{"application/json", "text/event-stream"} {
		conn, err := net.Dial("tcp", u.Host)
		require.NoError(t, err)
		_, err = fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: %s\r\nAccept: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", u.Host, accept)
		require.NoError(t, err)
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			_, _ = io.Copy(io.Discard, conn)
		}()
		sent := 1
		for cut := false; !cut; {
			select {
			case <-closed:
				cut = true
			case <-time.After(20 * time.Millisecond):
				if _, err := conn.Write([]byte(" ")); err != nil {
					cut = true
				}
				sent++
				require.Less(t, sent, 1000, "%s: connection still open after %d slow bytes", accept, sent)
			}
		}
		_ = conn.Close()
		t.Logf("%s: cut off after %d of 100000 bytes", accept, sent)
	}
}
