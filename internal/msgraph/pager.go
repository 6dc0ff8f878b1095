package msgraph

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ListOptions are the OData options of a collection GET.
type ListOptions struct {
	Select []string // $select; nil = Graph's default property set
	Filter string   // $filter; build literals with Literal/Eq
	Top    int      // $top, 1..999; 0 = Graph's default page (100)
	// Advanced turns on advanced query mode (ConsistencyLevel: eventual plus
	// $count=true), which ne/not/endsWith/$search need.
	Advanced bool
	Search   string // $search, advanced mode only, e.g. `"displayName:ann"`
	// SkipToken continues a listing where an earlier page's @odata.nextLink
	// pointed (see SkipToken), with these same options.
	SkipToken string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if len(o.Select) > 0 {
		q.Set("$select", strings.Join(o.Select, ","))
	}
	if o.Filter != "" {
		q.Set("$filter", o.Filter)
	}
	if o.Top > 0 {
		q.Set("$top", strconv.Itoa(o.Top))
	}
	if o.Search != "" {
		q.Set("$search", o.Search)
	}
	if o.Advanced {
		q.Set("$count", "true")
	}
	if o.SkipToken != "" {
		q.Set("$skiptoken", o.SkipToken)
	}
	return q
}

func (o ListOptions) header() http.Header {
	if !o.Advanced {
		return nil
	}
	return http.Header{consistencyLevelHeader: {consistencyLevelEventual}}
}

type page[T any] struct {
	Value     []T    `json:"value"`
	NextLink  string `json:"@odata.nextLink"`
	DeltaLink string `json:"@odata.deltaLink"`
	Count     *int   `json:"@odata.count"`
}

// Pager walks a collection page by page, following @odata.nextLink unchanged.
type Pager[T any] struct {
	c      *Client
	first  call
	next   string
	header http.Header
	fresh  bool
	done   bool
	count  *int
}

func newPager[T any](c *Client, first call) *Pager[T] {
	return &Pager[T]{c: c, first: first, header: first.header, fresh: first.fresh}
}

// NextPage returns the next page; ok is false once the collection is exhausted.
func (p *Pager[T]) NextPage(ctx context.Context) (items []T, ok bool, err error) {
	if p.done {
		return nil, false, nil
	}
	cl := p.first
	if p.next != "" {
		cl = call{method: http.MethodGet, link: p.next, header: p.header, fresh: p.fresh}
	}
	pg, err := roundtrip[page[T]](ctx, p.c, cl)
	if err != nil {
		return nil, false, err
	}
	if pg.Count != nil {
		p.count = pg.Count
	}
	p.next = pg.NextLink
	p.done = pg.NextLink == ""
	return pg.Value, true, nil
}

// Count is @odata.count from the first page (advanced mode only), nil otherwise.
func (p *Pager[T]) Count() *int { return p.count }

// All yields every item of every page; iteration stops at the first error,
// which is yielded with a zero item.
func (p *Pager[T]) All(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			items, ok, err := p.NextPage(ctx)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			if !ok {
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
		}
	}
}

// Collect reads the whole collection into memory.
func (p *Pager[T]) Collect(ctx context.Context) ([]T, error) {
	var out []T
	for it, err := range p.All(ctx) {
		if err != nil {
			return out, err
		}
		out = append(out, it)
	}
	return out, nil
}
