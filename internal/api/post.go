package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// postTransport is gqlgen's POST transport (transport.POST with its
// defaults) with one change: the answer of a dispatched operation is written
// without passing its data through encoding/json again. gqlgen writes every
// answer with json.Marshal of a graphql.Response, whose data is a
// json.RawMessage the executor has just written; encoding/json re-validates
// and compacts it byte by byte, which was a quarter of the handler's CPU for a
// page of 100 users (issue 12, docs/benchmarks.md). The bytes written are the
// same as gqlgen's (TestPOSTWritesWhatGqlgenWrites): the data is copied with
// the same HTML escaping json.Marshal applies. Errors of the transport itself
// (an unreadable or undecodable body, an invalid operation) are written
// exactly as gqlgen writes them.
type postTransport struct{ transport.POST }

var _ graphql.Transport = postTransport{}

const (
	contentTypeJSON            = "application/json"
	contentTypeGraphQLResponse = "application/graphql-response+json"
)

var rawParamsPool = sync.Pool{New: func() any { return new(graphql.RawParams) }}

func (t postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if t.ResponseHeaders != nil || t.UseGrapQLResponseJsonByDefault {
		// Options this copy does not implement: gqlgen's own.
		t.POST.Do(w, r, exec)
		return
	}
	ctx := r.Context()
	contentType := responseContentType(r)
	w.Header().Add("Content-Type", contentType)
	params := rawParamsPool.Get().(*graphql.RawParams)
	defer func() {
		*params = graphql.RawParams{}
		rawParamsPool.Put(params)
	}()
	start := graphql.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeGqlgenJSON(w, exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf("could not read request body: %+v", err)}))
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeGqlgenJSON(w, exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf(
			"json request body could not be decoded: %+v body:%s", err, string(body))}))
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	rc, opErr := exec.CreateOperationContext(ctx, params)
	if opErr != nil {
		status := http.StatusOK
		if errcode.GetErrorKind(opErr) == errcode.KindProtocol {
			status = http.StatusUnprocessableEntity
			if contentType == contentTypeGraphQLResponse {
				status = http.StatusBadRequest
			}
		}
		w.WriteHeader(status)
		writeGqlgenJSON(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), opErr))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	writeResponse(w, responses(ctx))
}

// responseContentType is gqlgen's choice for a POST without explicit headers:
// application/json unless the client asks for the GraphQL response type.
func responseContentType(r *http.Request) string {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return contentTypeJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", contentTypeJSON:
			return contentTypeJSON
		case contentTypeGraphQLResponse:
			return contentTypeGraphQLResponse
		}
	}
	return contentTypeGraphQLResponse
}

// writeGqlgenJSON is gqlgen's own writer, for the rare answers above.
func writeGqlgenJSON(w io.Writer, resp *graphql.Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		panic(fmt.Errorf("unable to marshal %s: %w", string(resp.Data), err))
	}
	_, _ = w.Write(b)
}

var responseBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeResponse writes what json.Marshal(resp) would, copying resp.Data as
// it is apart from the HTML escaping encoding/json applies (the executor
// writes it compact already).
func writeResponse(w io.Writer, resp *graphql.Response) {
	if resp == nil || resp.Label != "" || resp.Path != nil || resp.HasNext != nil {
		// Incremental delivery (@defer) fields: gqlgen's writer.
		writeGqlgenJSON(w, resp)
		return
	}
	buf := responseBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 { // do not keep one huge answer's buffer
			buf.Reset()
			responseBuffers.Put(buf)
		}
	}()
	buf.Reset()
	buf.WriteByte('{')
	if len(resp.Errors) > 0 {
		errs, err := json.Marshal(resp.Errors)
		if err != nil {
			writeGqlgenJSON(w, resp)
			return
		}
		buf.WriteString(`"errors":`)
		buf.Write(errs)
		buf.WriteByte(',')
	}
	buf.WriteString(`"data":`)
	if len(resp.Data) == 0 {
		buf.WriteString("null")
	} else {
		appendHTMLEscaped(buf, resp.Data)
	}
	if len(resp.Extensions) > 0 {
		ext, err := json.Marshal(resp.Extensions)
		if err != nil {
			writeGqlgenJSON(w, resp)
			return
		}
		buf.WriteString(`,"extensions":`)
		buf.Write(ext)
	}
	buf.WriteByte('}')
	_, _ = w.Write(buf.Bytes())
}

// appendHTMLEscaped copies JSON src to dst escaping <, > and & and the line
// and paragraph separators U+2028 and U+2029, as json.Marshal does with
// every string it writes (they can only occur inside strings in JSON).
func appendHTMLEscaped(dst *bytes.Buffer, src []byte) {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '<' || c == '>' || c == '&':
			dst.Write(src[start:i])
			dst.WriteString(`\u00`)
			dst.WriteByte(hex[c>>4])
			dst.WriteByte(hex[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			dst.Write(src[start:i])
			dst.WriteString(`\u202`)
			dst.WriteByte(hex[src[i+2]&0xF])
			i += 2
			start = i + 1
		}
	}
	dst.Write(src[start:])
}
