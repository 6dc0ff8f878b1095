// Package statuswriter records the status of an HTTP answer for middleware
// (access log, metrics) while staying transparent to streaming: gqlgen's SSE
// transport asserts http.Flusher on the writer it gets (and answers 500
// "streaming unsupported" without it), and http.ResponseController finds
// Hijack and the deadlines through Unwrap.
package statuswriter

import "net/http"

// Writer wraps an http.ResponseWriter; Status is 0 until the handler writes.
type Writer struct {
	http.ResponseWriter
	Status int
}

var _ http.Flusher = (*Writer)(nil)

// WriteHeader implements http.ResponseWriter.
func (w *Writer) WriteHeader(code int) {
	if w.Status == 0 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *Writer) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends what is buffered (an SSE event) to the client now. A failed
// flush means the client is gone; the stream notices through its context.
func (w *Writer) Flush() {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach Flush/Hijack and the deadlines.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
