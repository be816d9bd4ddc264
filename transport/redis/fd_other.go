//go:build !unix

package redis

import (
	"errors"
	"net"
	"time"
)

// Hub sockets need a unix system (the hub's poller is epoll or kqueue); on
// others the package builds, and consuming fails with errors.ErrUnsupported.

func fdRead(int, []byte) (int, error)                 { return 0, errors.ErrUnsupported }
func fdWrite(int, []byte) (int, error)                { return 0, errors.ErrUnsupported }
func fdClose(int) error                               { return errors.ErrUnsupported }
func isAgain(error) bool                              { return false }
func isIntr(error) bool                               { return false }
func fdWaitReadable(int, time.Duration) (bool, error) { return false, errors.ErrUnsupported }
func takeFD(nc net.Conn) (int, error)                 { nc.Close(); return -1, errors.ErrUnsupported }
func socketPair() (int, net.Conn, error)              { return -1, nil, errors.ErrUnsupported }
