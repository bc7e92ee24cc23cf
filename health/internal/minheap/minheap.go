// Package minheap is a binary min-heap whose items are told their index,
// so that any item can be removed in O(log n): the health scheduler's
// queue of checks by next slot and the TCP checker's connects by deadline.
package minheap

// Heap orders items by less. The zero Heap is not usable: see New.
type Heap[T any] struct {
	items []T
	less  func(a, b T) bool
	moved func(t T, i int) // t is now at index i; -1 when it left
}

// New returns an empty heap ordered by less that calls moved whenever an
// item's index changes.
func New[T any](less func(a, b T) bool, moved func(t T, i int)) *Heap[T] {
	return &Heap[T]{less: less, moved: moved}
}

// Len is the number of items.
func (h *Heap[T]) Len() int { return len(h.items) }

// Head is the least item; the heap must not be empty.
func (h *Heap[T]) Head() T { return h.items[0] }

// Push adds t.
func (h *Heap[T]) Push(t T) {
	h.items = append(h.items, t)
	i := len(h.items) - 1
	h.moved(t, i)
	h.up(i)
}

// Pop removes and returns the least item; the heap must not be empty.
func (h *Heap[T]) Pop() T { return h.Remove(0) }

// Remove takes out the item at index i and returns it.
func (h *Heap[T]) Remove(i int) T {
	t := h.items[i]
	last := len(h.items) - 1
	if i != last {
		h.swap(i, last)
	}
	var zero T
	h.items[last] = zero
	h.items = h.items[:last]
	if i != last {
		h.down(i)
		h.up(i)
	}
	h.moved(t, -1)
	return t
}

func (h *Heap[T]) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.moved(h.items[i], i)
	h.moved(h.items[j], j)
}

func (h *Heap[T]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.items[i], h.items[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *Heap[T]) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && h.less(h.items[r], h.items[l]) {
			c = r
		}
		if !h.less(h.items[c], h.items[i]) {
			return
		}
		h.swap(i, c)
		i = c
	}
}
