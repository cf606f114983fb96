package sqlite_test

func helperMain() bool { return false }
