package kube

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

func TestObserveUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	c, err := NewClientFromConfig("lab", &rest.Config{Host: "https://" + addr, BearerToken: secretToken}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Observe(t.Context(), c, ObserveOptions{})
	if err == nil {
		t.Fatal("observed a dead server")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "kubernetes lab ("+addr+"): node list: ") || !strings.Contains(msg, "connection refused") || strings.Contains(msg, "\n") {
		t.Errorf("error = %q", msg)
	}
	noSecret(t, msg)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = Observe(ctx, c, ObserveOptions{})
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "kubernetes lab (") {
		t.Errorf("cancelled: %v", err)
	}
}
