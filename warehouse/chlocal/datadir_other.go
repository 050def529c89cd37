//go:build !unix

package chlocal

func checkDataDirFree(string) error { return nil }
