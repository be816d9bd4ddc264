//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package hub

import (
	"time"

	"github.com/kombu-go/kombu/poller"
)

func (h *Hub) initNetpoll() error { return poller.ErrUnsupported }

func (h *Hub) pollNetpoll(wait time.Duration) (int, error) { return h.p.Wait(h.events, wait) }
