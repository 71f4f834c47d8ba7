package preflight

import "testing"

func TestUnstableUIDL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ format, bad string }{
		{"%08Xu%08Xv", ""},
		{"%v.%u", ""},
		{"%08Xv%08Xu", ""},
		{"%u", ""},
		{"%{uidvalidity}-%{uid}", ""},
		{"%m", "%m"},
		{"%f", "%f"},
		{"%Mf", "%Mf"},
		{"%g", "%g"},
		{"%v-%08Xm", "%08Xm"},
	} {
		if got := unstableUIDL(tc.format); got != tc.bad {
			t.Errorf("unstableUIDL(%q) = %q, want %q", tc.format, got, tc.bad)
		}
	}
}

func TestParseLocation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in                           string
		driver, root, inbox, folders string
	}{
		{"mbox:~/mail:INBOX=/var/mail/%u", "mbox", "~/mail", "/var/mail/%u", "mail"},
		{"mbox:%h/Mail:INBOX=%h/Mailbox", "mbox", "%h/Mail", "%h/Mailbox", "Mail"},
		{"mbox:/srv/mail/%u:INBOX=/var/mail/%u", "mbox", "/srv/mail/%u", "/var/mail/%u", ""},
		{"maildir:~/Maildir", "maildir", "~/Maildir", "", "Maildir"},
		{"", "", "", "", ""},
	} {
		l := parseLocation(tc.in)
		if l.driver != tc.driver || l.root != tc.root || l.inbox != tc.inbox || l.folders != tc.folders {
			t.Errorf("parseLocation(%q) = %+v", tc.in, l)
		}
	}
}

func TestInboxNamespace(t *testing.T) {
	t.Parallel()
	conf := "namespace shared {\n  inbox = no\n  separator = .\n}\nnamespace mine {\n  inbox = yes\n  mailbox Sent {\n    special_use = \\Sent\n  }\n  separator = /\n}\n"
	ns := inboxNamespace(conf)
	if !ns.found || ns.name != "mine" || ns.separator != "/" {
		t.Errorf("inboxNamespace = %+v, want mine with separator /", ns)
	}
	if ns := inboxNamespace(""); ns.found {
		t.Errorf("inboxNamespace of nothing = %+v", ns)
	}
}
