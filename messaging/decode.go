package messaging

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// DefaultInlineDecodeLimit is the largest uncompressed body a consumer
// decodes on the hub goroutine when Options.InlineDecodeLimit is 0: 16 KiB.
// Deserializing JSON costs about 20-40 ns a byte here, so a body of that
// size holds the hub for under a millisecond; a larger or compressed body
// goes to the connection's decode pool, which costs the hub two short
// turns instead of the whole decode (measured in the README, "Bad input and
// failures").
const DefaultInlineDecodeLimit = 16 << 10

// deadLetterTimeout bounds the declaration and publication of one message
// to a consumer's dead-letter queue.
const deadLetterTimeout = 10 * time.Second

// Headers of a message sent to a dead-letter queue (ConsumerOptions.
// DeadLetterQueue). The body is the bytes as received, with content type
// application/data (binary), so that a Kombu consumer of that queue gets
// them unchanged.
const (
	// HeaderDecodeError holds the decode error's text.
	HeaderDecodeError = "x-decode-error"
	// HeaderOriginalQueue names the queue the message was consumed from.
	HeaderOriginalQueue = "x-original-queue"
	// HeaderOriginalExchange and HeaderOriginalRoutingKey say where it
	// was published.
	HeaderOriginalExchange   = "x-original-exchange"
	HeaderOriginalRoutingKey = "x-original-routing-key"
	// HeaderOriginalContentType, HeaderOriginalContentEncoding and
	// HeaderOriginalCompression keep the content-type, content-encoding
	// and compression header it came with (when it had them).
	HeaderOriginalContentType     = "x-original-content-type"
	HeaderOriginalContentEncoding = "x-original-content-encoding"
	HeaderOriginalCompression     = "x-original-compression"
)

// decodePool runs the work that must not run on the hub: decompressing and
// deserializing large bodies, and publishing to dead-letter queues. At
// most max jobs run at once, each on a goroutine started for it that also
// runs the jobs queued meanwhile and ends when none is left, so an idle
// pool holds no goroutine. The Connection owns the pool; its Close cancels
// ctx and joins every goroutine.
type decodePool struct {
	max    int
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the queue and the count: the hub submits, and the pool's
	// goroutines take the next job when they finish one.
	mu      sync.Mutex
	queue   []func(ctx context.Context)
	running int
	closed  bool
}

// defaultDecodeWorkers leaves the hub a P of its own: with every P busy
// decoding, a hub woken by a socket or a timer waits for the scheduler to
// preempt a decoder (10 ms slices), behind the others.
func defaultDecodeWorkers() int { return max(1, runtime.GOMAXPROCS(0)-1) }

func newDecodePool(max int) *decodePool {
	if max <= 0 {
		max = defaultDecodeWorkers()
	}
	p := &decodePool{max: max}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// submit runs job off the calling goroutine; it never blocks. It reports
// false when the pool is closed (the job does not run).
func (p *decodePool) submit(job func(ctx context.Context)) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if p.running >= p.max {
		p.queue = append(p.queue, job)
		p.mu.Unlock()
		return true
	}
	p.running++
	p.wg.Add(1)
	p.mu.Unlock()
	go p.work(job) // joined by close
	return true
}

func (p *decodePool) work(job func(ctx context.Context)) {
	defer p.wg.Done()
	for job != nil {
		job(p.ctx)
		p.mu.Lock()
		if len(p.queue) == 0 || p.closed {
			p.running--
			job = nil
		} else {
			job = p.queue[0]
			p.queue[0] = nil
			p.queue = p.queue[1:]
		}
		p.mu.Unlock()
	}
}

// close cancels the running jobs' context, drops the queued jobs and waits
// for the goroutines. The messages of dropped jobs stay unacknowledged: the
// transport's close gives them back to the broker.
func (p *decodePool) close() {
	p.mu.Lock()
	p.closed = true
	p.queue = nil
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

// pending is a delivery waiting for its turn in its queue's line.
type pending struct {
	m     *Message
	ready bool // set on the hub once the pool prepared m
}

// heavy reports whether preparing m must leave the hub: a compressed body
// (decompression is unbounded in time up to the size limit), or a body
// above the inline limit that Callbacks will want decoded.
func (c *Consumer) heavy(m *Message) bool {
	if m.compression() != "" {
		return true
	}
	limit := c.conn.inlineLimit
	return c.opts.OnMessage == nil && (limit < 0 || len(m.Body) > limit)
}

// receive is Kombu's _receive_callback, on the hub goroutine. A message
// that is cheap to prepare is dispatched at once, unless messages of its
// queue are still being prepared by the pool: deliveries of a queue reach
// the callbacks in the order the broker gave them.
func (c *Consumer) receive(h *hub.Hub, ch transport.Channel, noAck bool, tm *transport.Message) {
	m := newMessage(tm, ch, c.conn.ser, c.accept, noAck)
	if !c.admit(m) {
		return
	}
	q := m.DeliveryInfo.Queue
	heavy := len(m.errs) == 0 && c.heavy(m)
	c.lineMu.Lock()
	line := c.lines[q]
	if len(line) == 0 && !heavy {
		c.lineMu.Unlock()
		c.dispatch(m)
		return
	}
	p := &pending{m: m, ready: !heavy}
	if c.lines == nil {
		c.lines = map[string][]*pending{}
	}
	c.lines[q] = append(line, p)
	c.lineMu.Unlock()
	if !heavy {
		return // its turn comes when the heavy one before it is done
	}
	c.conn.pool.submit(func(context.Context) {
		c.prepare(m)
		h.Post(func() {
			c.lineMu.Lock()
			p.ready = true
			c.lineMu.Unlock()
			c.flush(q)
		})
	})
}

// prepare decompresses the body and, for Callbacks, deserializes it into
// the message's cache. Runs on a pool goroutine; errors stay in the
// message, for dispatch to find.
func (c *Consumer) prepare(m *Message) {
	m.decompress(c.conn.comp, c.conn.maxDecompressed)
	if m.Err() == nil && c.opts.OnMessage == nil {
		_, _ = m.Decode()
	}
}

// flush dispatches the prepared messages at the head of queue q's line.
// On the hub goroutine.
func (c *Consumer) flush(q string) {
	for {
		c.lineMu.Lock()
		line := c.lines[q]
		if len(line) == 0 || !line[0].ready {
			c.lineMu.Unlock()
			return
		}
		m := line[0].m
		line[0] = nil
		if len(line) == 1 {
			delete(c.lines, q)
		} else {
			c.lines[q] = line[1:]
		}
		c.lineMu.Unlock()
		c.dispatch(m)
	}
}

// deadLetter publishes m, undecodable, to the consumer's dead-letter
// queue and acknowledges it; if that fails the message is requeued. Runs
// on a pool goroutine.
func (c *Consumer) deadLetter(ctx context.Context, m *Message, cause error) {
	name := c.opts.DeadLetterQueue
	ctx, cancel := context.WithTimeout(ctx, deadLetterTimeout)
	defer cancel()
	err := c.declareDeadLetter(ctx, m.ch, name)
	if err == nil {
		err = m.ch.Publish(ctx, deadLetterMessage(m, cause), "", name, transport.PublishOptions{})
	}
	log := c.conn.log.With("queue", m.DeliveryInfo.Queue, "delivery_tag", m.DeliveryTag(),
		"dead_letter_queue", name, "err", cause)
	if err != nil {
		log.Error("messaging: cannot dead-letter an undecodable message; requeueing it", "publish_err", err)
		if !m.noAck {
			if rerr := m.Requeue(); rerr != nil {
				log.Error("messaging: cannot requeue message", "requeue_err", rerr)
			}
		}
		return
	}
	log.Warn("messaging: message cannot be decoded; moved to the dead-letter queue")
	m.AckLogError(c.conn.log)
}

// declareDeadLetter declares the dead-letter queue (durable) once per
// channel. A queue that exists with other settings is used as it is.
func (c *Consumer) declareDeadLetter(ctx context.Context, ch transport.Channel, name string) error {
	c.lineMu.Lock()
	done := c.dlqOn == ch
	c.lineMu.Unlock()
	if done {
		return nil
	}
	_, err := ch.DeclareQueue(ctx, transport.Queue{Name: name, Durable: true})
	if err != nil && !errors.Is(err, transport.ErrNotEquivalent) {
		return err
	}
	c.lineMu.Lock()
	c.dlqOn = ch
	c.lineMu.Unlock()
	return nil
}

// deadLetterMessage is what goes to the dead-letter queue: the body as
// received, as application/data, the message's headers and properties,
// and the error and the message's origin in x- headers.
func deadLetterMessage(m *Message, cause error) *transport.Message {
	h := make(map[string]any, len(m.Headers)+8)
	for k, v := range m.Headers {
		h[k] = v
	}
	delete(h, "compression")
	h[HeaderDecodeError] = cause.Error()
	h[HeaderOriginalQueue] = m.DeliveryInfo.Queue
	h[HeaderOriginalExchange] = m.DeliveryInfo.Exchange
	h[HeaderOriginalRoutingKey] = m.DeliveryInfo.RoutingKey
	if m.ContentType != "" {
		h[HeaderOriginalContentType] = m.ContentType
	}
	if m.ContentEncoding != "" {
		h[HeaderOriginalContentEncoding] = m.ContentEncoding
	}
	if c := m.compression(); c != "" {
		h[HeaderOriginalCompression] = c
	}
	props := m.Properties
	props.DeliveryMode = 2
	return &transport.Message{
		Body:            m.raw,
		ContentType:     "application/data",
		ContentEncoding: "binary",
		Headers:         h,
		Properties:      props,
	}
}
