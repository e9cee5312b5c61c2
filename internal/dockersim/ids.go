package dockersim

import (
	crand "crypto/rand"
	"math/big"
	"math/rand/v2"
	"sync"
)

// Swarmkit's identity.NewID: 17 random bytes with the high bit set, written
// in base 36, first digit dropped, giving 25 lowercase alphanumerics.
const (
	idEntropyBytes = 17
	idLength       = 25
)

type idGen struct {
	mu  sync.Mutex
	rng *rand.ChaCha8 // nil: crypto/rand
}

func newIDGen(seed uint64) *idGen {
	g := &idGen{}
	if seed != 0 {
		var s [32]byte
		for i := 0; i < 8; i++ {
			s[i] = byte(seed >> (8 * i))
		}
		g.rng = rand.NewChaCha8(s)
	}
	return g
}

func (g *idGen) next() string {
	var p [idEntropyBytes]byte
	g.mu.Lock()
	if g.rng != nil {
		_, _ = g.rng.Read(p[:])
	} else if _, err := crand.Read(p[:]); err != nil {
		g.mu.Unlock()
		panic("dockersim: crypto/rand: " + err.Error())
	}
	g.mu.Unlock()
	p[0] |= 0x80
	return new(big.Int).SetBytes(p[:]).Text(36)[1 : idLength+1]
}
