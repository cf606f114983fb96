package vercel

import "time"

// SetPollInterval shortens the wait for a stopping session in tests.
func SetPollInterval(d time.Duration) (restore func()) {
	old := pollInterval
	pollInterval = d
	return func() { pollInterval = old }
}

// SetUploadLevel sets the gzip level of uploads.
func SetUploadLevel(level int) { uploadLevel = level }
