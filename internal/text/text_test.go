package text

import "testing"

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"a\r\nb\tc":           "a b c",
		"  x \u0000y\u0085z ": "x y z",
		"Subject: x\nBcc: y":  "Subject: x Bcc: y",
		"":                    "",
	} {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"modélisation", 20, "modélisation"},
		{"modélisation", 12, "modélisation"},
		{"modélisation", 6, "modél…"},
		{"a b", 2, "a…"},
		{"abc", 1, "…"},
	}
	for _, tt := range tests {
		if got := Truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 o", 1023: "1023 o", 1024: "1.0 Ko", 123456: "120.6 Ko", 5 << 20: "5.0 Mo", 3 << 30: "3.0 Go"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 bytes", 1: "1 byte", 49: "49 bytes", 1023: "1023 bytes", 1024: "1 KiB",
		123456: "120.6 KiB", 200 << 20: "200 MiB", 262144000: "250 MiB", 3 << 30: "3 GiB", 1536: "1.5 KiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
