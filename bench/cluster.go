package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/internal/hashslot"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/redis"
)

// Redis Cluster (redis+cluster://) as the benchmarks see it from outside
// the transport: the URL read by the transport's own rules, the slot of a
// queue's keys, the masters that serve the slots (CLUSTER SLOTS), and the
// client connections and CPU time of every node.

// isClusterURL reports whether url names a Redis Cluster
// (redis+cluster:// or cluster://).
func isClusterURL(url string) bool {
	ep, err := messaging.ParseURL(url)
	return err == nil && (ep.Scheme == "redis+cluster" || ep.Scheme == "cluster")
}

// clusterTarget is what the bench needs of a redis+cluster URL: the seeds
// and credentials for go-redis, and global_keyprefix.
type clusterTarget struct {
	opt    goredis.ClusterOptions
	prefix string
}

// parseCluster reads a redis+cluster URL with the transport's parser
// (redis.ParseConfig), so that seeds, credentials, TLS and
// global_keyprefix mean what they mean to the transport.
func parseCluster(url string) (clusterTarget, error) {
	ep, err := messaging.ParseURL(url)
	if err != nil {
		return clusterTarget{}, err
	}
	opts := make(map[string]any, len(ep.Options)+1)
	for k, v := range ep.Options {
		opts[k] = v
	}
	if len(ep.SSL) > 0 {
		opts["ssl"] = maps.Clone(ep.SSL)
	}
	o, err := redis.ParseConfig(transport.Config{Scheme: ep.Scheme, Hostname: ep.Hostname, Port: ep.Port,
		UserID: ep.UserID, Password: ep.Password, VirtualHost: ep.VirtualHost, Options: opts})
	if err != nil {
		return clusterTarget{}, err
	}
	if len(o.ClusterAddrs) == 0 {
		return clusterTarget{}, fmt.Errorf("bench: %s is not a redis+cluster URL", ep.Scheme)
	}
	return clusterTarget{prefix: o.GlobalKeyPrefix, opt: goredis.ClusterOptions{
		Addrs: o.ClusterAddrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLS,
		Protocol: 2, DisableIdentity: true,
	}}, nil
}

// client returns a go-redis cluster client with a pool of poolSize
// connections per node; blocking lifts the read timeout (BRPOP).
func (t clusterTarget) client(poolSize int, blocking bool) *goredis.ClusterClient {
	opt := t.opt
	opt.PoolSize = poolSize
	if blocking {
		opt.ReadTimeout = -1
	}
	return goredis.NewClusterClient(&opt)
}

// node returns a client of one node, with the URL's credentials.
func (t clusterTarget) node(addr string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: addr, Username: t.opt.Username, Password: t.opt.Password,
		TLSConfig: t.opt.TLSConfig, PoolSize: 1, Protocol: 2, DisableIdentity: true})
}

// queueKey is the key of a queue's list in the transport's cluster layout
// (the queue name as hash tag, after global_keyprefix).
func (t clusterTarget) queueKey(queue string) string { return t.prefix + "{" + queue + "}" }

// slotMap is CLUSTER SLOTS as the bench uses it.
type slotMap struct {
	ranges []slotSpan
	// masters are the masters in the order of their first slot; nodes
	// are every node, masters and replicas.
	masters []string
	nodes   []string
}

type slotSpan struct {
	from, to int
	master   string
}

// slots asks the cluster which master serves each slot (CLUSTER SLOTS).
func (t clusterTarget) slots(ctx context.Context) (slotMap, error) {
	rdb := t.client(1, false)
	defer rdb.Close()
	slots, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		return slotMap{}, fmt.Errorf("bench: CLUSTER SLOTS: %w", err)
	}
	var m slotMap
	first := map[string]int{}
	seen := map[string]bool{}
	for _, s := range slots {
		for i, n := range s.Nodes {
			addr := n.Addr
			if h, p, err := net.SplitHostPort(addr); err == nil && h == "" {
				addr = net.JoinHostPort("127.0.0.1", p)
			}
			if !seen[addr] {
				seen[addr] = true
				m.nodes = append(m.nodes, addr)
			}
			if i > 0 {
				continue
			}
			m.ranges = append(m.ranges, slotSpan{from: s.Start, to: s.End, master: addr})
			if f, ok := first[addr]; !ok || s.Start < f {
				first[addr] = s.Start
			}
		}
	}
	for addr := range first {
		m.masters = append(m.masters, addr)
	}
	slices.SortFunc(m.masters, func(a, b string) int { return first[a] - first[b] })
	return m, nil
}

// masterOf returns the master serving slot ("" when none does).
func (m slotMap) masterOf(slot int) string {
	for _, r := range m.ranges {
		if slot >= r.from && slot <= r.to {
			return r.master
		}
	}
	return ""
}

// pickQueues returns k queue names base-0, base-1, ... (skipping those
// that do not fit) and the master of each: spread, as evenly over the
// masters as k allows, in turn; else all on the first master.
func (t clusterTarget) pickQueues(m slotMap, base string, k int, spread bool) (names, masters []string, err error) {
	if len(m.masters) == 0 {
		return nil, nil, errors.New("bench: the cluster names no master")
	}
	want := make(map[string]int, len(m.masters))
	for i := range k {
		if spread {
			want[m.masters[i%len(m.masters)]]++
		} else {
			want[m.masters[0]]++
		}
	}
	for i := 0; len(names) < k; i++ {
		if i > 1000*k+10000 {
			return nil, nil, fmt.Errorf("bench: found no %d queue names that fit %v", k, want)
		}
		name := base + "-" + strconv.Itoa(i)
		mst := m.masterOf(hashslot.Slot(t.queueKey(name)))
		if want[mst] > 0 {
			want[mst]--
			names, masters = append(names, name), append(masters, mst)
		}
	}
	return names, masters, nil
}

// nodeCensus keeps a client of every node of a cluster, to count the
// client connections opened since it was taken and the CPU time the nodes
// used.
type nodeCensus struct {
	nodes   []string
	clients []*goredis.Client
	before  []map[string]bool // per node, the IDs of its clients at the start
}

// newNodeCensus connects to every node of m and notes the client
// connections each has (its own among them).
func newNodeCensus(ctx context.Context, t clusterTarget, m slotMap) (*nodeCensus, error) {
	c := &nodeCensus{nodes: m.nodes}
	for _, addr := range m.nodes {
		c.clients = append(c.clients, t.node(addr))
	}
	for i := range c.clients {
		ids, err := c.clientIDs(ctx, i)
		if err != nil {
			c.close()
			return nil, err
		}
		c.before = append(c.before, ids)
	}
	return c, nil
}

// clientIDs lists the IDs of node i's client connections, leaving out
// replication links (flags M and S).
func (c *nodeCensus) clientIDs(ctx context.Context, i int) (map[string]bool, error) {
	list, err := c.clients[i].ClientList(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("bench: CLIENT LIST on %s: %w", c.nodes[i], err)
	}
	ids := map[string]bool{}
	for line := range strings.SplitSeq(list, "\n") {
		var id, flags string
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			} else if v, ok := strings.CutPrefix(f, "flags="); ok {
				flags = v
			}
		}
		if id != "" && !strings.ContainsAny(flags, "MS") {
			ids[id] = true
		}
	}
	return ids, nil
}

// opened returns how many client connections, summed over every node,
// were opened since the census was taken and are still open: the bench's,
// and those of any other client that connected meanwhile.
func (c *nodeCensus) opened(ctx context.Context) (int, error) {
	n := 0
	for i := range c.clients {
		ids, err := c.clientIDs(ctx, i)
		if err != nil {
			return 0, err
		}
		for id := range ids {
			if !c.before[i][id] {
				n++
			}
		}
	}
	return n, nil
}

// cpu returns the CPU time (user and system, seconds) each node has used
// (INFO cpu).
func (c *nodeCensus) cpu(ctx context.Context) ([]float64, error) {
	out := make([]float64, len(c.clients))
	for i, rdb := range c.clients {
		info, err := rdb.InfoMap(ctx, "cpu").Result()
		if err != nil {
			return nil, fmt.Errorf("bench: INFO cpu on %s: %w", c.nodes[i], err)
		}
		for _, f := range []string{"used_cpu_user", "used_cpu_sys"} {
			v, err := strconv.ParseFloat(info["CPU"][f], 64)
			if err != nil {
				return nil, fmt.Errorf("bench: INFO cpu on %s: %s: %w", c.nodes[i], f, err)
			}
			out[i] += v
		}
	}
	return out, nil
}

func (c *nodeCensus) close() {
	for _, rdb := range c.clients {
		rdb.Close()
	}
}
