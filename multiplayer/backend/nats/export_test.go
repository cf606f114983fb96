package natsbackend

// pause simulates a stopped process: renewals stop and, when noFence,
// the node does not fence itself at its deadline either.
func (b *Backend) pause(noFence bool) {
	b.noSelfFence.Store(noFence)
	b.blockRenew.Store(true)
}

func (b *Backend) resume() {
	b.blockRenew.Store(false)
	b.noSelfFence.Store(false)
}
