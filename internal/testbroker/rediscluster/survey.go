package rediscluster

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is what one node says when asked.
type report struct {
	addr   string
	err    error  // it did not answer
	pid    int    // INFO server: process_id
	state  string // CLUSTER INFO: cluster_state
	link   string // INFO replication: master_link_status ("" on a master)
	view   []Node // CLUSTER NODES
	viewOK bool
}

// survey is what every node that could be reached says, in address order.
type survey struct {
	reports []report
}

// Nodes returns every node of the cluster as the first node that answers
// sees it (masters in slot order, then replicas), with the PID each node
// reports (0 for a node that does not answer). It fails the test when no
// node answers.
func (c *Cluster) Nodes() []Node {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := c.survey(ctx)
	nodes := s.view()
	if nodes == nil {
		c.tb.Fatalf("rediscluster: Nodes: %v: %s", errNoNode, s.errors())
	}
	return nodes
}

// MasterOf returns the master that serves key: the slot comes from CLUSTER
// KEYSLOT (and must equal [Slot]'s), its master from CLUSTER SLOTS, both
// asked of the first node that answers, within 10 s.
func (c *Cluster) MasterOf(key string) (Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last error = errNoNode
	for _, addr := range c.seeds() {
		cn, err := dial(ctx, addr)
		if err != nil {
			last = err
			continue
		}
		vs, err := cn.pipeline(ctx, []string{"CLUSTER", "KEYSLOT", key}, []string{"CLUSTER", "SLOTS"})
		cn.close()
		if err != nil {
			last = fmt.Errorf("%s: %w", addr, err)
			continue
		}
		slot := int(vs[0].Int)
		if want := Slot(key); slot != want {
			return Node{}, fmt.Errorf("rediscluster: CLUSTER KEYSLOT %q is %d, Slot says %d", key, slot, want)
		}
		master := ""
		for _, r := range vs[1].Array() {
			e := r.Array()
			if len(e) >= 3 && int(e[0].Int) <= slot && slot <= int(e[1].Int) && len(e[2].Array()) >= 2 {
				hp := e[2].Array()
				master = string(hp[0].Str) + ":" + strconv.FormatInt(hp[1].Int, 10)
			}
		}
		if master == "" {
			return Node{}, fmt.Errorf("rediscluster: %s serves no master for slot %d (key %q)", addr, slot, key)
		}
		s := c.survey(ctx)
		if n, ok := s.node(master); ok {
			return n, nil
		}
		return Node{}, fmt.Errorf("rediscluster: %s, master of slot %d, is not in the cluster's view", master, slot)
	}
	return Node{}, fmt.Errorf("rediscluster: MasterOf(%q): %w", key, last)
}

// WaitFailover waits until old, a master (as Nodes or MasterOf returned it
// before it was killed), has been replaced: another master that answers
// serves all of old's slots, and the cluster has settled (every node that
// answers says cluster_state:ok, flags none of the others, agrees with the
// others on roles and slots, and every replica that answers is in sync). It
// returns the new master. It fails when ctx ends first, saying what was
// still missing.
func (c *Cluster) WaitFailover(ctx context.Context, old Node) (Node, error) {
	if old.Role != Master || len(old.Slots) == 0 {
		return Node{}, fmt.Errorf("rediscluster: WaitFailover: %s is not a master with slots", old.Addr)
	}
	for {
		s := c.survey(ctx)
		why := s.unsettled()
		if why == "" {
			var owner Node
			owner, why = s.ownerOf(old.Slots)
			if why == "" && owner.Addr == old.Addr {
				why = "its slots are still " + old.Addr + "'s"
			}
			if why == "" {
				return owner, nil
			}
		}
		if !sleep(ctx, pollInterval) {
			return Node{}, fmt.Errorf("rediscluster: no failover of %s: %w (last: %s)", old.Addr, ctx.Err(), why)
		}
	}
}

// seeds returns the addresses to ask: each node's port from the state
// directory, then the URL's addresses.
func (c *Cluster) seeds() []string {
	var addrs []string
	if c.dir != "" {
		ports, _ := filepath.Glob(filepath.Join(c.dir, "n[1-6]", "redis.port"))
		for _, p := range ports {
			if b, err := os.ReadFile(p); err == nil {
				addrs = append(addrs, "127.0.0.1:"+strings.TrimSpace(string(b)))
			}
		}
	}
	hosts, _, _ := strings.Cut(strings.TrimPrefix(c.url, "redis+cluster://"), "/")
	for _, h := range strings.Split(hosts, ",") {
		if _, hp, ok := strings.Cut(h, "@"); ok {
			h = hp
		}
		if h != "" && !slices.Contains(addrs, h) {
			addrs = append(addrs, h)
		}
	}
	return addrs
}

// survey asks every node the seeds and their views name.
func (c *Cluster) survey(ctx context.Context) survey {
	addrs := c.seeds()
	var s survey
	for i := 0; i < len(addrs); i++ {
		r := ask(ctx, addrs[i])
		for _, n := range r.view {
			if !slices.Contains(addrs, n.Addr) {
				addrs = append(addrs, n.Addr)
			}
		}
		s.reports = append(s.reports, r)
	}
	slices.SortFunc(s.reports, func(a, b report) int { return cmp.Compare(a.addr, b.addr) })
	return s
}

// ask asks one node for its view, its state, its replication link and its PID.
func ask(ctx context.Context, addr string) report {
	r := report{addr: addr}
	cn, err := dial(ctx, addr)
	if err != nil {
		r.err = err
		return r
	}
	defer cn.close()
	vs, err := cn.pipeline(ctx, []string{"CLUSTER", "NODES"}, []string{"CLUSTER", "INFO"},
		[]string{"INFO", "replication"}, []string{"INFO", "server"})
	if err != nil {
		r.err = err
		return r
	}
	r.view, r.err = parseNodes(string(vs[0].Str))
	r.viewOK = r.err == nil
	r.state = infoField(string(vs[1].Str), "cluster_state")
	r.link = infoField(string(vs[2].Str), "master_link_status")
	r.pid, _ = strconv.Atoi(infoField(string(vs[3].Str), "process_id"))
	return r
}

// infoField returns the value of field in an INFO-style "field:value" text.
func infoField(text, field string) string {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), field+":"); ok {
			return v
		}
	}
	return ""
}

// parseNodes reads CLUSTER NODES: "<id> <ip:port@cport[,hostname]> <flags>
// <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...".
// Nodes still in handshake or without an address are left out.
func parseNodes(text string) ([]Node, error) {
	var nodes []Node
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("rediscluster: CLUSTER NODES line %q: too few fields", line)
		}
		flags := strings.Split(f[2], ",")
		if slices.Contains(flags, "handshake") || slices.Contains(flags, "noaddr") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := Node{ID: f[0], Addr: addr, Role: Replica,
			Failed: slices.Contains(flags, "fail") || slices.Contains(flags, "fail?")}
		if slices.Contains(flags, "master") {
			n.Role = Master
		} else if f[3] != "-" {
			n.MasterID = f[3]
		}
		for _, sl := range f[8:] {
			if strings.HasPrefix(sl, "[") {
				continue // a slot being imported or migrated
			}
			a, b, isRange := strings.Cut(sl, "-")
			first, err1 := strconv.Atoi(a)
			last, err2 := first, error(nil)
			if isRange {
				last, err2 = strconv.Atoi(b)
			}
			if err1 != nil || err2 != nil || first < 0 || last < first || last >= SlotCount {
				return nil, fmt.Errorf("rediscluster: CLUSTER NODES line %q: bad slot %q", line, sl)
			}
			n.Slots = append(n.Slots, SlotRange{first, last})
		}
		nodes = append(nodes, n)
	}
	// Masters before replicas ("master" < "replica"), masters in slot order.
	slices.SortFunc(nodes, func(a, b Node) int {
		return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(firstSlot(a), firstSlot(b)), cmp.Compare(a.Addr, b.Addr))
	})
	return nodes, nil
}

// firstSlot is n's first slot, or SlotCount when it serves none.
func firstSlot(n Node) int {
	if len(n.Slots) == 0 {
		return SlotCount
	}
	return n.Slots[0].First
}

// answered reports whether the node at addr answered.
func (s survey) answered(addr string) bool {
	for _, r := range s.reports {
		if r.addr == addr {
			return r.err == nil
		}
	}
	return false
}

// view returns the first answering node's view, with every node's PID; nil
// if no node answered.
func (s survey) view() []Node {
	for _, r := range s.reports {
		if r.viewOK {
			nodes := slices.Clone(r.view)
			for i := range nodes {
				nodes[i].PID = s.pid(nodes[i].Addr)
			}
			return nodes
		}
	}
	return nil
}

// node returns the node at addr from view.
func (s survey) node(addr string) (Node, bool) {
	for _, n := range s.view() {
		if n.Addr == addr {
			return n, true
		}
	}
	return Node{}, false
}

func (s survey) pid(addr string) int {
	for _, r := range s.reports {
		if r.addr == addr && r.err == nil {
			return r.pid
		}
	}
	return 0
}

// errors lists why nodes did not answer.
func (s survey) errors() string {
	var b strings.Builder
	for _, r := range s.reports {
		if r.err != nil {
			fmt.Fprintf(&b, "%s: %v; ", r.addr, r.err)
		}
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// unsettled returns why the cluster has not settled, or "" once it has:
// every node that answers says cluster_state:ok and flags none of the nodes
// that answer, they all agree on those nodes' roles and slots, the masters
// among them serve all 16384 slots, and every replica among them is in sync.
func (s survey) unsettled() string {
	var ref *report
	for i := range s.reports {
		r := &s.reports[i]
		if r.err != nil {
			continue
		}
		if r.state != "ok" {
			return fmt.Sprintf("%s says cluster_state:%s", r.addr, r.state)
		}
		if r.link != "" && r.link != "up" {
			return fmt.Sprintf("%s's link to its master is %s", r.addr, r.link)
		}
		if ref == nil {
			ref = r
		}
		for _, n := range r.view {
			if !s.answered(n.Addr) {
				continue
			}
			if n.Failed {
				return fmt.Sprintf("%s flags %s as failing", r.addr, n.Addr)
			}
			if m, ok := find(ref.view, n.Addr); !ok || m.Role != n.Role || !slices.Equal(m.Slots, n.Slots) {
				return fmt.Sprintf("%s and %s disagree about %s", ref.addr, r.addr, n.Addr)
			}
		}
	}
	if ref == nil {
		return "no node answers: " + s.errors()
	}
	served := 0
	for _, n := range ref.view {
		if n.Role == Master && s.answered(n.Addr) {
			for _, sr := range n.Slots {
				served += sr.Last - sr.First + 1
			}
		}
	}
	if served != SlotCount {
		return fmt.Sprintf("the masters that answer serve %d slots of %d", served, SlotCount)
	}
	return ""
}

// ownerOf returns the master that serves every slot range of ranges, in
// the first answering node's view, or why there is none.
func (s survey) ownerOf(ranges []SlotRange) (Node, string) {
	var owner Node
	for _, sr := range ranges {
		var found bool
		for _, n := range s.view() {
			if n.Role == Master && slices.ContainsFunc(n.Slots, func(o SlotRange) bool { return o.First <= sr.First && sr.Last <= o.Last }) {
				if owner.Addr != "" && owner.Addr != n.Addr {
					return Node{}, fmt.Sprintf("slots %d-%d went to %s, others to %s", sr.First, sr.Last, n.Addr, owner.Addr)
				}
				owner, found = n, true
			}
		}
		if !found {
			return Node{}, fmt.Sprintf("no master serves slots %d-%d whole", sr.First, sr.Last)
		}
	}
	return owner, ""
}

func find(nodes []Node, addr string) (Node, bool) {
	i := slices.IndexFunc(nodes, func(n Node) bool { return n.Addr == addr })
	if i < 0 {
		return Node{}, false
	}
	return nodes[i], true
}
