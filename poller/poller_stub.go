//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package poller

import "time"

// Poller is a placeholder on platforms without epoll or kqueue: New fails
// with ErrUnsupported, so the module still builds everywhere.
type Poller struct{}

// New returns ErrUnsupported on this platform.
func New() (*Poller, error) { return nil, ErrUnsupported }

// Fd returns -1.
func (p *Poller) Fd() int { return -1 }

// Add returns ErrUnsupported.
func (p *Poller) Add(fd int, ev Event) error { return ErrUnsupported }

// Modify returns ErrUnsupported.
func (p *Poller) Modify(fd int, ev Event) error { return ErrUnsupported }

// Remove returns ErrUnsupported.
func (p *Poller) Remove(fd int) error { return ErrUnsupported }

// Wait returns ErrUnsupported.
func (p *Poller) Wait(out []Ready, timeout time.Duration) (int, error) { return 0, ErrUnsupported }

// Wake returns ErrUnsupported.
func (p *Poller) Wake() error { return ErrUnsupported }

// Close does nothing.
func (p *Poller) Close() error { return nil }
