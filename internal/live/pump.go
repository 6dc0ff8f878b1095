package live

import (
	"sync"

	"github.com/dirsync/dirsync/internal/pubsub"
)

// pump moves one stream's Hub messages to its GraphQL channel without a
// goroutine while the stream is idle. The Hub's receive loop queues a
// pointer to each message (pubsub.SubscribeFunc; the message is shared by
// all subscribers) and starts a drain goroutine if none runs. The drain runs
// step on each queued message in order, may block on the client (sending to
// the GraphQL channel) or on the database (a re-read), and exits as soon as
// the queue is empty. At most one drain runs at a time, so step needs no
// locking. A queue already holding limit messages ends the subscription with
// pubsub.ErrSlowConsumer, exactly as the Hub's own buffer does.
//
// The queue is a slice that grows with the backlog and is released when the
// drain empties it: an idle subscription holds no queue at all, and the
// limit (DefaultBuffer) only bounds how far a client may fall behind, 8
// bytes a queued message. A fixed channel would make every idle
// subscription pay for the worst backlog it is allowed (issue 12: a limit
// of 64 in a channel cut healthy subscribers off when the machine was
// starved of CPU for a few seconds).
type pump struct {
	limit int

	mu sync.Mutex
	// q holds the queued messages from head on (under mu).
	q    []*pubsub.Message
	head int
	// running: a drain runs, or the stream is not started yet, or it has
	// ended (under mu). A message queued meanwhile waits for that drain.
	running bool
	// closed: end was called, with reason (under mu).
	closed bool
	reason error

	// step handles one message; false ends the stream (the client left, the
	// job ended, or a re-read failed): the drain then closes the Hub
	// subscription and calls stop.
	step func(*pubsub.Message) bool
	// stop ends the stream after step returned false.
	stop func()
	// finish ends the stream when the Hub subscription ended, with the
	// reason it gives (nil after Close, ErrSlowConsumer, ErrHubClosed or
	// the context's error), after every queued message went through step.
	finish func(reason error)
	// sub is the Hub subscription, set before start.
	sub *pubsub.Subscription
}

func newPump(limit int) *pump {
	return &pump{limit: limit, running: true} // until start
}

// deliver is the Hub's SubscribeFunc callback: it never blocks.
func (p *pump) deliver(m *pubsub.Message) bool {
	p.mu.Lock()
	if len(p.q)-p.head >= p.limit {
		p.mu.Unlock()
		return false
	}
	if p.head > 0 && len(p.q) == cap(p.q) {
		// Reuse the consumed front rather than grow: a client that keeps
		// a little behind never empties the queue.
		n := copy(p.q, p.q[p.head:])
		clear(p.q[n:])
		p.q, p.head = p.q[:n], 0
	}
	p.q = append(p.q, m)
	p.kickLocked()
	p.mu.Unlock()
	return true
}

// end is the Hub's SubscribeFunc end callback; no deliver follows it.
func (p *pump) end(reason error) {
	p.mu.Lock()
	p.reason, p.closed = reason, true
	p.kickLocked()
	p.mu.Unlock()
}

func (p *pump) kickLocked() {
	if !p.running {
		p.running = true
		go p.drain()
	}
}

// start lets messages flow once step, stop, finish and sub are set;
// anything queued during setup is handled first.
func (p *pump) start() {
	p.mu.Lock()
	p.running = false
	if len(p.q) > p.head || p.closed {
		p.kickLocked()
	}
	p.mu.Unlock()
}

// next takes the oldest queued message; ok is false when there is none, and
// then closed tells whether the stream has ended. An empty queue gives its
// memory back.
func (p *pump) next() (m *pubsub.Message, ok, closed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head == len(p.q) {
		p.q, p.head = nil, 0
		if !p.closed {
			p.running = false
		}
		return nil, false, p.closed
	}
	m = p.q[p.head]
	p.q[p.head] = nil // the message may be large; do not keep it alive
	p.head++
	return m, true, false
}

func (p *pump) drain() {
	for {
		m, ok, closed := p.next()
		switch {
		case ok:
			if !p.step(m) {
				p.sub.Close() // running stays set, so end's kick starts nothing
				p.stop()
				return
			}
		case closed:
			p.finish(p.reason) // running stays set: nothing runs after this
			return
		default:
			return
		}
	}
}
