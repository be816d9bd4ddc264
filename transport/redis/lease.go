package redis

import (
	"context"
	"math"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/internal/resp"
)

// Consumer leases (doc.go, "Consuming"). A message BLMOVE hands over sits
// in its consumer's processing list until the next consume script records
// it (one round trip). So that a consumer that dies in that round trip
// leaves nothing behind, every consuming channel with ack emulation is in
// a registry zset, scored with the time its lease expires: registered by
// the consume socket's handshake (so, before any BLMOVE on that socket)
// and renewed by a hub timer. The visibility sweep of any live consumer
// turns the processing list of a consumer whose lease expired into unacked
// records, which the sweep then restores like any other.

// maxLeaseTTL and minLeaseTTL bound how long a registration lives without
// renewal: the visibility timeout, within these bounds, so that a message a
// dead consumer held in its processing list comes back about as soon as
// one it held in the unacked records. A lease is renewed three times per
// TTL.
const (
	maxLeaseTTL = 10 * time.Second
	minLeaseTTL = 2 * time.Second
)

// leaseTTL is how long a registration lives without renewal.
func (o *options) leaseTTL() time.Duration { return min(maxLeaseTTL, max(minLeaseTTL, o.visibility)) }

// The keys of this package's own (Kombu has none of them): beside the
// unacked hash, so that two applications that keep separate unacked keys in
// one Redis keep separate consumers too.
func (o *options) registryKey() string            { return o.key(o.unackedKey + ":consumers") }
func (o *options) processingKey(id string) string { return o.key(o.unackedKey + ":processing:" + id) }
func (o *options) deliveringKey(id string) string { return o.key(o.unackedKey + ":delivering:" + id) }

// leaseExpiry is the registry score of a lease renewed at t: Unix ms.
func (o *options) leaseExpiry(t time.Time) string {
	return strconv.FormatInt(t.Add(o.leaseTTL()).UnixMilli(), 10)
}

// registerCmd is the ZADD that registers (or renews) the store's lease.
func (st *store) registerCmd() []byte {
	return resp.AppendCommand(nil, "ZADD", st.o.registryKey(), st.o.leaseExpiry(time.Now()), st.id)
}

// leaveCmd is the script that ends the store's registration on close:
// whatever its processing list still holds is recorded (scored now), and
// the list, the delivering hash and the registration are deleted.
func (st *store) leaveCmd() []byte {
	o := st.o
	return resp.AppendCommand(nil, "EVAL", convertSrc, "5", o.key(o.unackedKey), o.key(o.unackedIndexKey),
		o.registryKey(), st.pKey, st.dKey, st.id, "", score(time.Now()))
}

// register adds st to the stores whose leases the poller renews. Hub
// goroutine.
func (p *multiPoller) register(st *store) {
	if st.leased || p.closed {
		return
	}
	st.leased = true
	p.leased = append(p.leased, st)
	if p.leaseTimer == nil {
		e := p.h.CallRepeatedly(p.c.o.leaseTTL()/3, p.renewLeases)
		p.leaseTimer = e.Cancel
		p.timers = append(p.timers, e.Cancel)
	}
}

// renewLeases renews the leases of the consuming stores in one ZADD, on
// the executor.
func (p *multiPoller) renewLeases() {
	ids := map[string][]string{} // registry key -> consumer ids
	var keys []string
	for _, st := range p.leased {
		if st.registered && !st.closed && !st.dormant {
			k := st.o.registryKey()
			if _, ok := ids[k]; !ok {
				keys = append(keys, k)
			}
			ids[k] = append(ids[k], st.id)
		}
	}
	if len(keys) == 0 {
		return
	}
	c := p.c
	c.exec.do(func(ctx context.Context) {
		exp, _ := strconv.ParseFloat(c.o.leaseExpiry(time.Now()), 64)
		_, err := c.rdb.Pipelined(ctx, func(pl goredis.Pipeliner) error {
			for _, k := range keys {
				zs := make([]goredis.Z, len(ids[k]))
				for i, id := range ids[k] {
					zs[i] = goredis.Z{Score: exp, Member: id}
				}
				pl.ZAdd(ctx, k, zs...)
			}
			return nil
		})
		if err != nil {
			c.o.log.Warn("redis: renewing consumer leases failed", "err", err)
		}
	})
}

// convertScript is convertSrc as go-redis runs it.
var convertScript = goredis.NewScript(convertSrc)

// convertDead turns the processing lists of consumers whose lease expired
// into unacked records (part of the visibility sweep). Each message is
// scored with its consumer's last renewal, so the sweep restores it
// visibility_timeout after the consumer was last seen alive.
func (c *Conn) convertDead(ctx context.Context) { c.convertDeadIn(ctx, c.o) }

// convertDeadIn is convertDead for the registry under o's keys.
func (c *Conn) convertDeadIn(ctx context.Context, o *options) {
	now := time.Now()
	dead, err := c.rdb.ZRangeByScoreWithScores(ctx, o.registryKey(), &goredis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: 100,
	}).Result()
	if err != nil {
		o.log.Warn("redis: reading the consumer registry failed", "err", err)
		return
	}
	for _, z := range dead {
		id, _ := z.Member.(string)
		seen := time.UnixMilli(int64(z.Score)).Add(-o.leaseTTL())
		sc := strconv.FormatInt(int64(math.Ceil(float64(seen.UnixMilli())/1000)), 10)
		n, err := convertScript.Run(ctx, c.rdb, []string{o.key(o.unackedKey), o.key(o.unackedIndexKey),
			o.registryKey(), o.processingKey(id), o.deliveringKey(id)}, id,
			strconv.FormatInt(now.UnixMilli(), 10), sc).Int()
		switch {
		case err != nil:
			o.log.Warn("redis: converting a dead consumer's processing list failed", "consumer", id, "err", err)
		case n > 0:
			o.log.Info("redis: a dead consumer's processing list became unacked records", "consumer", id, "count", n)
		}
	}
}
