package live

import (
	"sync/atomic"

	"github.com/dirsync/dirsync/internal/pubsub"
)

// pump moves one stream's Hub messages to its GraphQL channel without a
// goroutine while the stream is idle. The Hub's receive loop queues a
// pointer to each message (pubsub.SubscribeFunc; the message is shared by
// all subscribers) into q, 8 bytes a slot, and starts a drain goroutine if
// none runs. The drain runs step on each queued message in order, may block
// on the client (sending to the GraphQL channel) or on the database (a
// re-read), and exits as soon as q is empty. At most one drain runs at a
// time, so step needs no locking. A full q ends the subscription with
// pubsub.ErrSlowConsumer, exactly as the Hub's own buffer does.
//
// An idle subscribed websocket thus costs the queue and a few small
// structs instead of a parked goroutine (its stack is about 6–8 KiB) plus
// a 104-byte-per-slot buffer of Message values.
type pump struct {
	q chan *pubsub.Message
	// busy is held by the running drain, and by the stream's setup until
	// start: a message queued meanwhile waits for it.
	busy atomic.Bool
	// closing is set, after reason, before q is closed.
	closing atomic.Bool
	reason  error

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

func newPump(buffer int) *pump {
	p := &pump{q: make(chan *pubsub.Message, buffer)}
	p.busy.Store(true) // until start
	return p
}

// deliver is the Hub's SubscribeFunc callback: it never blocks.
func (p *pump) deliver(m *pubsub.Message) bool {
	select {
	case p.q <- m:
	default:
		return false
	}
	p.kick()
	return true
}

// end is the Hub's SubscribeFunc end callback; no deliver follows it.
func (p *pump) end(reason error) {
	p.reason = reason
	p.closing.Store(true)
	close(p.q)
	p.kick()
}

func (p *pump) kick() {
	if p.busy.CompareAndSwap(false, true) {
		go p.drain()
	}
}

// start lets messages flow once step, stop, finish and sub are set;
// anything queued during setup is handled first.
func (p *pump) start() {
	p.busy.Store(false)
	if len(p.q) > 0 || p.closing.Load() {
		p.kick()
	}
}

func (p *pump) drain() {
	for {
		select {
		case m, ok := <-p.q:
			if !ok {
				p.finish(p.reason) // busy stays set: nothing runs after this
				return
			}
			if !p.step(m) {
				p.sub.Close() // busy stays set, so end's kick starts nothing
				p.stop()
				return
			}
		default:
			p.busy.Store(false)
			// A message or the end may have arrived after the receive
			// above but before busy was released, when kick found busy set.
			if len(p.q) == 0 && !p.closing.Load() {
				return
			}
			if !p.busy.CompareAndSwap(false, true) {
				return // a new drain took over
			}
		}
	}
}
