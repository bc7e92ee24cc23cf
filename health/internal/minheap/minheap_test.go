package minheap

import (
	"math/rand/v2"
	"slices"
	"testing"
)

type item struct {
	v     int
	index int
}

// TestHeapOrder pushes, removes from the middle and pops at random and
// holds the heap to a sorted model, and every item to its index.
func TestHeapOrder(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	h := New(func(a, b *item) bool { return a.v < b.v }, func(it *item, i int) { it.index = i })
	var model []*item
	for step := range 5000 {
		switch op := rnd.IntN(3); {
		case op == 0 || len(model) == 0:
			it := &item{v: rnd.IntN(100)}
			h.Push(it)
			model = append(model, it)
		case op == 1:
			it := model[rnd.IntN(len(model))]
			if got := h.Remove(it.index); got != it {
				t.Fatalf("step %d: Remove(%d) returned another item", step, it.index)
			}
			if it.index != -1 {
				t.Fatalf("step %d: removed item keeps index %d", step, it.index)
			}
			model = slices.DeleteFunc(model, func(x *item) bool { return x == it })
		default:
			least := slices.MinFunc(model, func(a, b *item) int { return a.v - b.v })
			got := h.Pop()
			if got.v != least.v {
				t.Fatalf("step %d: Pop = %d, want %d", step, got.v, least.v)
			}
			model = slices.DeleteFunc(model, func(x *item) bool { return x == got })
		}
		if h.Len() != len(model) {
			t.Fatalf("step %d: Len %d, want %d", step, h.Len(), len(model))
		}
		for i, it := range h.items {
			if it.index != i {
				t.Fatalf("step %d: item at %d thinks it is at %d", step, i, it.index)
			}
		}
	}
}
