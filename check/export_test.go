package check

import "context"

// testAsUser does the work inside homes for the tests of this package: maildirmig's workers
// (set by worker_test.go, which this package cannot import from its own tests), so that a test
// run as root works in another user's home as maildirmig check does.
var testAsUser AsUser = InProcess{}

// UseAsUser makes a the AsUser of this package's tests.
func UseAsUser(a AsUser) { testAsUser = a }

// ensureMaildirAs gives u an empty Maildir name through testAsUser, and reports whether it
// made one.
func ensureMaildirAs(u User, name string) (bool, error) {
	got, err := testAsUser.EnsureMaildir(context.Background(), &Home{User: u, Maildir: name})
	return got == Created, err
}
