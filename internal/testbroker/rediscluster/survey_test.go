package rediscluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// nodesLine renders one CLUSTER NODES line for node k (port 2000k, ID idk).
func nodesLine(k int, flags, master, slots string) string {
	return strings.TrimSpace(fmt.Sprintf("id%d 127.0.0.1:2000%d@3000%d,host%d %s %s 0 1700000000000 %d connected %s",
		k, k, k, k, flags, master, k, slots))
}

// healthy is a settled cluster's CLUSTER NODES: masters 1-3, replica k+3
// of master k.
func healthy() []string {
	return []string{
		nodesLine(1, "master", "-", "0-5460"),
		nodesLine(2, "master", "-", "5461-10922"),
		nodesLine(3, "master", "-", "10923-16383"),
		nodesLine(4, "slave", "id1", ""),
		nodesLine(5, "slave", "id2", ""),
		nodesLine(6, "slave", "id3", ""),
	}
}

func TestParseNodes(t *testing.T) {
	lines := []string{
		nodesLine(4, "myself,slave", "id1", ""),
		nodesLine(2, "master", "-", "5461-10000 10001 10002-10922 [10923->-id3]"),
		nodesLine(1, "master,fail", "-", ""),
		nodesLine(3, "master", "-", "0-5460 10923-16383"),
		nodesLine(5, "slave,fail?", "id2", ""),
		"id7 :0@0 handshake,noaddr - 0 0 0 disconnected",
	}
	nodes, err := parseNodes(strings.Join(lines, "\n") + "\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range nodes {
		got = append(got, fmt.Sprintf("%s %s %s failed=%v master=%s slots=%v", n.Addr, n.ID, n.Role, n.Failed, n.MasterID, n.Slots))
	}
	want := []string{
		"127.0.0.1:20003 id3 master failed=false master= slots=[{0 5460} {10923 16383}]",
		"127.0.0.1:20002 id2 master failed=false master= slots=[{5461 10000} {10001 10001} {10002 10922}]",
		"127.0.0.1:20001 id1 master failed=true master= slots=[]",
		"127.0.0.1:20004 id4 replica failed=false master=id1 slots=[]",
		"127.0.0.1:20005 id5 replica failed=true master=id2 slots=[]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseNodes:\n got %q\nwant %q", got, want)
	}

	for _, bad := range []string{"id1 127.0.0.1:1@2 master -", nodesLine(1, "master", "-", "9-3"), nodesLine(1, "master", "-", "16384"), nodesLine(1, "master", "-", "x")} {
		if _, err := parseNodes(bad); err == nil {
			t.Errorf("parseNodes(%q): no error", bad)
		}
	}
}

// surveyOf builds a survey in which node k answers with view views[k-1]
// (nil: it does not answer), cluster_state:ok and replicas in sync.
func surveyOf(t *testing.T, views ...[]string) survey {
	t.Helper()
	var s survey
	for i, v := range views {
		r := report{addr: fmt.Sprintf("127.0.0.1:2000%d", i+1), state: "ok", pid: 100 + i}
		if v == nil {
			r.err = errors.New("connection refused")
		} else {
			var err error
			if r.view, err = parseNodes(strings.Join(v, "\n")); err != nil {
				t.Fatal(err)
			}
			r.viewOK = true
			if i >= 3 {
				r.link = "up"
			}
		}
		s.reports = append(s.reports, r)
	}
	return s
}

func sixOf(v []string) [][]string { return [][]string{v, v, v, v, v, v} }

// TestUnsettled checks the settle test says no when it must, and yes when
// the cluster has settled, before and after a failover.
func TestUnsettled(t *testing.T) {
	if why := surveyOf(t, sixOf(healthy())...).unsettled(); why != "" {
		t.Errorf("healthy cluster: unsettled says %q", why)
	}

	// Node 1 killed; node 4 promoted; every live node agrees.
	after := healthy()
	after[0] = nodesLine(1, "master,fail", "-", "")
	after[3] = nodesLine(4, "master", "-", "0-5460")
	views := sixOf(after)
	views[0] = nil
	s := surveyOf(t, views...)
	if why := s.unsettled(); why != "" {
		t.Errorf("after the failover: unsettled says %q", why)
	}
	old := Node{Addr: "127.0.0.1:20001", Role: Master, Slots: []SlotRange{{0, 5460}}}
	if owner, why := s.ownerOf(old.Slots); why != "" || owner.Addr != "127.0.0.1:20004" || owner.PID != 103 {
		t.Errorf("ownerOf: %+v, %q; want 127.0.0.1:20004 with its PID", owner, why)
	}
	if owner, why := s.ownerOf([]SlotRange{{0, 6000}}); why == "" {
		t.Errorf("ownerOf a range two masters share: %+v, no reason", owner)
	}

	cases := []struct {
		name   string
		views  func(views [][]string)
		survey func(s *survey)
		want   string
	}{
		{name: "state fail", survey: func(s *survey) { s.reports[2].state = "fail" }, want: "cluster_state:fail"},
		{name: "replica out of sync", survey: func(s *survey) { s.reports[4].link = "down" }, want: "link to its master is down"},
		{name: "a live node flagged", views: func(v [][]string) {
			v[1] = slices.Clone(v[1])
			v[1][2] = nodesLine(3, "master,fail?", "-", "10923-16383")
		}, want: "flags 127.0.0.1:20003 as failing"},
		{name: "views disagree", views: func(v [][]string) {
			v[5] = slices.Clone(v[5])
			v[5][4] = nodesLine(5, "master", "-", "")
		}, want: "disagree about 127.0.0.1:20005"},
		{name: "dead master not replaced", views: func(v [][]string) { v[0] = nil }, want: "serve 10923 slots of 16384"},
		{name: "no node answers", views: func(v [][]string) { clear(v) }, want: "no node answers"},
	}
	for _, c := range cases {
		views := sixOf(healthy())
		if c.views != nil {
			c.views(views)
		}
		s := surveyOf(t, views...)
		if c.survey != nil {
			c.survey(&s)
		}
		if why := s.unsettled(); !strings.Contains(why, c.want) {
			t.Errorf("%s: unsettled says %q, want %q", c.name, why, c.want)
		}
	}
}
