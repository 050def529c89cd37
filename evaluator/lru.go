package evaluator

import lru "github.com/hashicorp/golang-lru/v2"

// newCache returns a thread-safe LRU cache of at most size entries (at
// least one).
func newCache[K comparable, V any](size int) *lru.Cache[K, V] {
	c, err := lru.New[K, V](max(size, 1))
	if err != nil {
		panic(err) // unreachable: size is positive
	}
	return c
}
