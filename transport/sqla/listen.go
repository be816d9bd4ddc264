package sqla

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var driverBadConn = driver.ErrBadConn

func isClosedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "connection refused")
}

// startListener starts the LISTEN goroutine of a PostgreSQL connection
// whose trigger is in place, once. Called by the first consumer.
func (c *Conn) startListener() {
	if c.o.Dialect != PostgreSQL || c.o.NoListen || !c.db.info.notify {
		return
	}
	c.listenOnce.Do(func() {
		c.wg.Add(1)
		go c.listen() // owned by c; stopped by c.cancel and joined in Close
	})
}

// listen holds one LISTEN connection (pgx's WaitForNotification blocks,
// so it has a goroutine of its own, one per connection whatever the number
// of queues) and wakes the stores that consume the notified queue. After
// every (re)connection it wakes every store: notifications sent while it
// was away are lost.
func (c *Conn) listen() {
	defer c.wg.Done()
	cfg, err := c.o.pgConfig()
	if err != nil {
		c.o.Logger.Error("sqla: listen: bad configuration; polling", "err", err)
		return
	}
	channelName := pgx.Identifier{c.o.MessageTable}.Sanitize()
	backoff := 100 * time.Millisecond
	for c.ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(c.ctx, cfg)
		if err == nil {
			_, err = conn.Exec(c.ctx, "LISTEN "+channelName)
			if err == nil {
				backoff = 100 * time.Millisecond
				c.listening.Store(true)
				c.eachStore((*store).wake)
				for {
					var n *pgconn.Notification
					n, err = conn.WaitForNotification(c.ctx)
					if err != nil {
						break
					}
					if qid, perr := strconv.ParseInt(n.Payload, 10, 64); perr == nil {
						c.eachStore(func(s *store) { s.wakeFor(qid) })
					}
				}
				c.listening.Store(false)
				// Polling resumes at polling_interval: wake the stores so
				// that their timers are rescheduled at the shorter period.
				c.eachStore((*store).wake)
			}
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(closeCtx)
			cancel()
		}
		if c.ctx.Err() != nil {
			return
		}
		c.o.Logger.Warn("sqla: LISTEN connection lost; polling until it is back", "err", err, "retry_in", backoff)
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
