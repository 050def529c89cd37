package warehouse_test

import "reflect"

func newScan(t reflect.Type) any { return reflect.New(t).Interface() }

func deref(ptrs []any) []any {
	out := make([]any, len(ptrs))
	for i, p := range ptrs {
		out[i] = reflect.ValueOf(p).Elem().Interface()
	}
	return out
}
