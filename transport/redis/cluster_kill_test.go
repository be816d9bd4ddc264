package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// TestClusterConnectionKills drops the consumer's connections mid-stream:
// every 50-250 ms, CLIENT KILL of every connection of the consumer's
// client name on one master (its node socket and go-redis's request
// connections), while 3,000 messages go to nine queues spread over the
// masters. Every message must be delivered (duplicates are allowed: a
// reply lost with its connection is recovered by the next consume script,
// an ack lost with its connection leaves the record to the visibility
// timeout). The cluster counterpart of the single-node TCP reset test
// (internal/faulttest): the masters announce their own addresses, so a
// proxy cannot stand between the client and a node, and the server closes
// the connections instead.
func TestClusterConnectionKills(t *testing.T) {
	prefix := uniq("ckill") + ":"
	name := strings.TrimSuffix(prefix, ":")
	ch, cc := clusterChannel(t, prefix, map[string]any{"client_name": name, "visibility_timeout": 5})
	pub, _ := clusterChannel(t, prefix, nil)
	ctx := ctxT(t)
	if err := ch.Qos(ctx, 20); err != nil {
		t.Fatal(err)
	}
	var queues []string
	for i := range 9 {
		queues = append(queues, fmt.Sprintf("kq%d", i))
	}
	got := consumeAcking(t, ch, queues, 10000)
	masters := clusterNodeAddrs(t, cc, true)
	var kills, killed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // joined through done
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50*time.Millisecond + rand.N(200*time.Millisecond)):
			}
			nc := goredis.NewClient(&goredis.Options{Addr: masters[rand.N(len(masters))], Protocol: 2})
			list, err := nc.ClientList(ctx).Result()
			if err == nil {
				for _, line := range strings.Split(list, "\n") {
					if !strings.Contains(line, " name="+name+" ") {
						continue
					}
					id, _, _ := strings.Cut(strings.TrimPrefix(line, "id="), " ")
					if n, err := nc.ClientKillByFilter(ctx, "ID", id).Result(); err == nil && n > 0 {
						killed.Add(n)
					}
				}
				kills.Add(1)
			}
			nc.Close()
		}
	}()
	const total = 3000
	for i := range total {
		q := queues[i%len(queues)]
		for {
			err := pub.Publish(ctx, textMsg(strconv.Itoa(i)), "", q, transport.PublishOptions{})
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	<-done
	seen := map[string]int{}
	deadline := time.After(60 * time.Second)
wait:
	for len(seen) < total {
		select {
		case b := <-got:
			seen[b]++
		case <-deadline:
			break wait
		}
	}
	lost, dups := 0, 0
	for i := range total {
		switch c := seen[strconv.Itoa(i)]; {
		case c == 0:
			lost++
		case c > 1:
			dups += c - 1
		}
	}
	t.Logf("published %d, delivered %d distinct, lost %d, duplicated %d; %d kill rounds, %d connections killed",
		total, len(seen), lost, dups, kills.Load(), killed.Load())
	if killed.Load() < 5 {
		t.Errorf("only %d connections killed: the test did not disturb the consumer", killed.Load())
	}
	if lost > 0 {
		t.Errorf("lost %d of %d messages", lost, total)
	}
}

// clusterNodeAddrs returns the addresses of the cluster's masters, or of
// all its nodes.
func clusterNodeAddrs(t testing.TB, cc *goredis.ClusterClient, mastersOnly bool) []string {
	t.Helper()
	var addrs []string
	var mu sync.Mutex // go-redis calls fn on a goroutine per node
	fn := func(ctx context.Context, c *goredis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		addrs = append(addrs, c.Options().Addr)
		return nil
	}
	var err error
	if mastersOnly {
		err = cc.ForEachMaster(context.Background(), fn)
	} else {
		err = cc.ForEachShard(context.Background(), fn)
	}
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}
