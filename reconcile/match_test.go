package reconcile

import (
	"slices"
	"strings"
	"testing"
)

func TestHostnameMatches(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"wk-01", "wk-01", true},
		{"WK-01", "wk-01", true},
		{"wk-01.corp.local", "wk-01", true},
		{"wk-01", "wk-01.corp.local", true},
		{"wk-01.corp.local.", "WK-01.corp.local", true},
		{"wk-01", "wk-011", false},
		{"wk-011", "wk-01.corp.local", false},
		{"wk-01.corp.local", "wk-01.lab.local", false},
		{"wk-01.corp.local", "wk-01.corp", false},
		{"10.0.0.5", "10", false},
		{"", "", false},
		{"wk-01", "", false},
	}
	for _, c := range cases {
		if g := HostnameMatches(c.a, c.b); g != c.want {
			t.Errorf("HostnameMatches(%q, %q) = %v, want %v", c.a, c.b, g, c.want)
		}
	}
}

func TestMemoryConsistent(t *testing.T) {
	cases := []struct {
		engine, configured int64
		want               bool
	}{
		{3900, 4096, true},       // the engine sees a bit less
		{4096 - 409, 4096, true}, // 10% of 4 GiB
		{4096 - 410, 4096, false},
		{2048 - 256, 2048, true}, // 256 MiB floor
		{2048 - 257, 2048, false},
		{1800, 2048, true},   // 256 MiB floor
		{15000, 16384, true}, // 10% of 16 GiB
		{14000, 16384, false},
		{4096, 8192, false}, // a different VM
		{4200, 4096, true},  // rounding the other way
	}
	for _, c := range cases {
		if g := MemoryConsistent(c.engine, c.configured); g != c.want {
			t.Errorf("MemoryConsistent(%d, %d) = %v, want %v", c.engine, c.configured, g, c.want)
		}
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		name      string
		vms       []VM
		desc      Description
		others    []Description // descriptions of other nodes (address sharing)
		wantRefs  []string
		wantEvid  []string // substrings expected in the evidence
		ambiguous bool
	}{
		{
			name:     "hostname, address and resources",
			vms:      vms(mkVM("wk-01", ip("10.0.0.5"))),
			desc:     d("wk-01", 2, 3900, "10.0.0.5"),
			wantRefs: []string{"vm-wk-01"},
			wantEvid: []string{"hostname wk-01 = guest hostname of VM wk-01", "addr 10.0.0.5 in VM wk-01 IPs", "2 CPUs / 3900 MiB consistent with VM config (2 vCPU, 4096 MB)"},
		},
		{
			name:     "FQDN description, short guest hostname",
			vms:      vms(mkVM("wk-01")),
			desc:     d("WK-01.corp.local", 2, 3900, ""),
			wantRefs: []string{"vm-wk-01"},
		},
		{
			name:     "short description, FQDN guest hostname",
			vms:      vms(mkVM("wk-01", host("wk-01.corp.local"))),
			desc:     d("wk-01", 2, 3900, ""),
			wantRefs: []string{"vm-wk-01"},
		},
		{
			name:     "wk-01 does not match wk-011",
			vms:      vms(mkVM("wk-011")),
			desc:     d("wk-01", 2, 3900, ""),
			wantRefs: []string{},
		},
		{
			name:     "duplicate hostname: the address decides",
			vms:      vms(mkVM("a", host("web"), ip("10.0.0.1")), mkVM("b", host("web"), ip("10.0.0.2"))),
			desc:     d("web", 2, 3900, "10.0.0.2"),
			wantRefs: []string{"vm-b"},
			wantEvid: []string{"hostname web also matches a (poweredOn); chose b because its IPs hold addr 10.0.0.2"},
		},
		{
			name:     "duplicate hostname: resources decide",
			vms:      vms(mkVM("a", host("web")), mkVM("b", host("web"), res(8, 32768))),
			desc:     d("web", 8, 32000, ""),
			wantRefs: []string{"vm-b"},
			wantEvid: []string{"chose b because its vCPU/memory fit the reported resources"},
		},
		{
			name:     "duplicate hostname: powered on beats off and template, ambiguity recorded",
			vms:      vms(mkVM("a", host("web"), off()), mkVM("b", host("web")), mkVM("t", host("web"), template())),
			desc:     d("web", 2, 3900, ""),
			wantRefs: []string{"vm-b"},
			wantEvid: []string{"hostname web also matches a (poweredOff), t (template); chose b because it is powered on"},
		},
		{
			name:      "duplicate hostname, nothing decides: ambiguous",
			vms:       vms(mkVM("a", host("web")), mkVM("b", host("web"))),
			desc:      d("web", 2, 3900, ""),
			wantRefs:  []string{"vm-a", "vm-b"},
			wantEvid:  []string{"ambiguous: hostname web matches 2 VMs equally well"},
			ambiguous: true,
		},
		{
			name:      "docker0 address shared by all VMs does not decide",
			vms:       vms(mkVM("a", host("web"), ip("172.17.0.1")), mkVM("b", host("web"), ip("172.17.0.1"))),
			desc:      d("web", 2, 3900, "172.17.0.1"),
			wantRefs:  []string{"vm-a", "vm-b"},
			ambiguous: true,
		},
		{
			name:     "address only, VM reports no guest hostname",
			vms:      vms(mkVM("x", host(""), ip("10.0.0.7"))),
			desc:     d("node-x", 2, 3900, "10.0.0.7"),
			wantRefs: []string{"vm-x"},
			wantEvid: []string{"addr 10.0.0.7 in VM x IPs (no hostname match"},
		},
		{
			name:     "address only never merges two hostnames",
			vms:      vms(mkVM("x", ip("10.0.0.7"))),
			desc:     d("node-y", 2, 3900, "10.0.0.7"),
			wantRefs: []string{},
			wantEvid: []string{"not matched on the address alone"},
		},
		{
			name:     "0.0.0.0 is no evidence",
			vms:      vms(mkVM("x", ip("0.0.0.0"))),
			desc:     d("node-y", 2, 3900, "0.0.0.0"),
			wantRefs: []string{},
			wantEvid: []string{"identifies no machine"},
		},
		{
			name:     "address presented by several nodes is weak",
			vms:      vms(mkVM("gw", host(""), ip("192.168.1.1"))),
			desc:     d("node-y", 2, 3900, "192.168.1.1"),
			others:   ds(d("node-z", 2, 3900, "192.168.1.1")),
			wantRefs: []string{},
			wantEvid: []string{"presented by 2 nodes"},
		},
		{
			name:     "hostname contradicted by a strong address: not matched",
			vms:      vms(mkVM("vm-a", host("wk-02"), ip("10.0.0.5")), mkVM("vm-b", host("wk-01"), ip("10.0.0.6"))),
			desc:     d("wk-01", 2, 3900, "10.0.0.5"),
			wantRefs: []string{},
			wantEvid: []string{"contradicting evidence, not matched"},
		},
		{
			name:     "guest hostname unknown: the VM name stands in",
			vms:      vms(mkVM("wk-01", noTools(), off())),
			desc:     d("wk-01", 2, 3900, "10.0.0.5"),
			wantRefs: []string{"vm-wk-01"},
			wantEvid: []string{"hostname wk-01 = name of VM wk-01 (its guest hostname is unknown)"},
		},
		{
			name:     "single candidate with other resources still matches, with the discrepancy noted",
			vms:      vms(mkVM("wk-01", res(4, 4096))),
			desc:     d("wk-01", 2, 3900, ""),
			wantRefs: []string{"vm-wk-01"},
			wantEvid: []string{"2 CPUs / 3900 MiB NOT consistent with VM config of wk-01 (4 vCPU, 4096 MB)"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nodes := []Node{node("n1", ds(tc.desc))}
			for k, o := range tc.others {
				nodes = append(nodes, node("n"+string(rune('2'+k)), ds(o)))
			}
			_, ns := match(snap(tc.vms, nodes...))
			md := ns[0].Descriptions[0]
			if !slices.Equal(md.VMRefs, tc.wantRefs) {
				t.Errorf("refs %v, want %v; evidence %q", md.VMRefs, tc.wantRefs, md.Evidence)
			}
			ev := strings.Join(md.Evidence, "\n")
			for _, s := range tc.wantEvid {
				if !strings.Contains(ev, s) {
					t.Errorf("evidence lacks %q:\n%s", s, ev)
				}
			}
			if got := strings.Contains(ev, "ambiguous"); got != tc.ambiguous {
				t.Errorf("ambiguous = %v, want %v", got, tc.ambiguous)
			}
		})
	}
}

// match runs only the matching of snap: the VMs (sorted by name, with the
// node IDs they matched) and the nodes (each description with the VMs it
// matched and why). Reconcile uses the same matching.
func match(snap Snapshot) ([]VMStatus, []NodeStatus) {
	st := newState(snap, History{})
	return st.vmStatuses(), st.nodeStatuses()
}
