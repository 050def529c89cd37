package chlocal_test

// envChildLife selects a child-process life of TestPersistsAcrossRestart.
const envChildLife = "CHLOCAL_TEST_CHILD_LIFE"

func runChildLife(life string) int { return 0 }
