package faulttest

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards every TCP connection made to its local address to a
// target address, and can reset all the live connections at once: both
// sockets of each pair are closed with SO_LINGER 0, so the client and the
// server each receive a RST, as after a network failure, not a clean close.
//
// A Proxy is safe for concurrent use. Its goroutines (one accept loop, two
// copiers per connection) are joined by Close.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	// mu guards pairs and closed: the accept loop and the copiers add and
	// remove pairs while the test resets them.
	mu     sync.Mutex
	pairs  map[*pair]struct{}
	closed bool
}

// pair is one proxied connection: the client's side and the server's.
type pair struct {
	client, server *net.TCPConn
	once           sync.Once
}

// NewProxy listens on 127.0.0.1 (a free port) and forwards to target
// (host:port).
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, pairs: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients connect to (127.0.0.1:PORT).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Live returns the number of connections being forwarded.
func (p *Proxy) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pairs)
}

// ResetAll resets every live connection (both sides see a RST) and returns
// how many it reset. New connections are accepted as before.
func (p *Proxy) ResetAll() int {
	p.mu.Lock()
	all := make([]*pair, 0, len(p.pairs))
	for pr := range p.pairs {
		all = append(all, pr)
		delete(p.pairs, pr)
	}
	p.mu.Unlock()
	for _, pr := range all {
		pr.close(true)
	}
	return len(all)
}

// Close stops accepting, resets the live connections and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.ResetAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: try again
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close() // the target is down: the client sees its connection closed
			continue
		}
		pr := &pair{client: c.(*net.TCPConn), server: s.(*net.TCPConn)}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			pr.close(true)
			continue
		}
		p.pairs[pr] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.copy(pr, pr.server, pr.client)
		go p.copy(pr, pr.client, pr.server)
	}
}

// copy forwards src to dst until either side fails or closes, then closes
// the pair (cleanly, unless a reset got there first).
func (p *Proxy) copy(pr *pair, dst, src *net.TCPConn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	p.mu.Lock()
	delete(p.pairs, pr)
	p.mu.Unlock()
	pr.close(false)
}

// close closes both sockets once; with reset, SO_LINGER 0 first makes the
// kernel send a RST instead of a FIN.
func (pr *pair) close(reset bool) {
	pr.once.Do(func() {
		if reset {
			pr.client.SetLinger(0)
			pr.server.SetLinger(0)
		}
		pr.client.Close()
		pr.server.Close()
	})
}
