package sandboxagent

// AgentBinary lets the external test package's TestMain (store_test.go)
// build the real binary the in-package helpers launch, with testbin.Main.
var AgentBinary = &agentBin

// NextCursor is the unexported cursor rule StorePage and MemoryStore share.
var NextCursor = nextCursor
