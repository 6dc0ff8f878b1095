package graphsim

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds a request body, after decompression: a small gzip body
// must not expand into gigabytes in the emulator's memory.
const maxBody = 4 << 20

// readBody returns the request body, decompressed when it came with
// Content-Encoding: gzip. Microsoft's Graph SDKs (Kiota's compression
// handler) gzip every request body by default and, on 415, send it again
// uncompressed; so an encoding the emulator does not take is a 415 in
// Graph's error envelope, and a body that does not decompress a 400.
func readBody(r *http.Request) ([]byte, *graphError) {
	if r.Body == nil {
		return nil, nil
	}
	src := io.Reader(r.Body)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			if errors.Is(err, io.EOF) { // an empty body, as sent
				return nil, nil
			}
			return nil, badBody()
		}
		defer zr.Close()
		src = zr
	default:
		return nil, gerr(http.StatusUnsupportedMediaType, codeUnsupportedMediaType,
			"Content-Encoding '"+r.Header.Get("Content-Encoding")+"' is not supported. Supported encodings: gzip, identity.")
	}
	body, err := io.ReadAll(io.LimitReader(src, maxBody+1))
	switch {
	case err != nil:
		return nil, badBody()
	case len(body) > maxBody:
		return nil, gerr(http.StatusRequestEntityTooLarge, codeRequestTooLarge, "The request body is too large.")
	}
	return body, nil
}

func badBody() *graphError {
	return odataBadRequest("Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
}
