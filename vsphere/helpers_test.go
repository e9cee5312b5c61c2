package vsphere

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
)

// simTest runs f against a fresh in-process vcsim built from model (the
// default VPX model when nil).
func simTest(t *testing.T, model *simulator.Model, f func(ctx context.Context, c *vim25.Client)) {
	t.Helper()
	if model == nil {
		model = simulator.VPX()
	}
	if err := model.Run(func(ctx context.Context, c *vim25.Client) error {
		f(ctx, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// callCounter counts SOAP calls by method, to prove paging happened and that
// no per-VM calls are made.
type callCounter struct {
	soap.RoundTripper
	// fail, when set, makes calls of that method fail without being sent.
	fail  string
	mu    sync.Mutex
	calls map[string]int
}

// counting returns a client that shares c's session and counts its calls.
func counting(c *vim25.Client) (*vim25.Client, *callCounter) {
	cc := &callCounter{RoundTripper: c.RoundTripper, calls: make(map[string]int)}
	return &vim25.Client{Client: c.Client, ServiceContent: c.ServiceContent, RoundTripper: cc}, cc
}

func (cc *callCounter) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	name := strings.TrimSuffix(reflect.TypeOf(req).Elem().Name(), "Body")
	cc.mu.Lock()
	cc.calls[name]++
	cc.mu.Unlock()
	if name == cc.fail {
		return errors.New("injected failure")
	}
	return cc.RoundTripper.RoundTrip(ctx, req, res)
}

func (cc *callCounter) total() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	n := 0
	for _, v := range cc.calls {
		n += v
	}
	return n
}

func (cc *callCounter) count(method string) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.calls[method]
}

// simulatorVPXTwoDCs is the VPX model with a second datacenter.
func simulatorVPXTwoDCs() *simulator.Model {
	m := simulator.VPX()
	m.Datacenter = 2
	return m
}
