package text

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFileName(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"photo.jpg", 150, "photo.jpg"},
		{"../../etc/passwd", 150, "passwd"},
		{`..\..\windows\win.ini`, 150, "win.ini"},
		{"dir/", 150, "file"},
		{"", 150, "file"},
		{"..", 150, "file"},
		{".htaccess", 150, "htaccess"},
		{"a\x00b\nc\td.jpg", 150, "abcd.jpg"},
		{"invoice\u202Egpj.exe", 150, "invoicegpj.exe"},
		{"vue de face.jpg", 150, "vue_de_face.jpg"},
		{`a:b*c?"<>|.png`, 150, "a_b_c_.png"},
		{"my photo (1).jpg", 150, "my_photo_(1).jpg"},
		{"Mode\u0300le 3D.usdz", 150, "Modèle_3D.usdz"}, // NFD in, NFC out
		{"---x---.png", 150, "x---.png"},
		{"caf\xe9.txt", 150, "caf_.txt"},
		// Cut: the extension stays, the stem loses its tail on a rune boundary.
		{"très-long-nom.glb", 8, "trè.glb"},
		{strings.Repeat("é", 100) + ".glb", 100, strings.Repeat("é", 48) + ".glb"},
		{strings.Repeat("x", 200) + ".jpeg2", 100, strings.Repeat("x", 94) + ".jpeg2"},
		{"abc-_.defghijklm", 10, "abc-_.defg"}, // the extension does not fit: the whole name is cut
		{"v1.2 final version", 8, "v1.2_fin"},  // " final version" is no extension
		{"_.glb", 150, "glb"},
	}
	for _, tt := range tests {
		if got := FileName(tt.in, tt.max); got != tt.want {
			t.Errorf("FileName(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestSplitExt(t *testing.T) {
	for in, want := range map[string][2]string{
		"a.tar.gz":                     {"a.tar", ".gz"},
		"v1.2 final":                   {"v1.2 final", ""},
		"README":                       {"README", ""},
		".bashrc":                      {".bashrc", ""}, // ext == name
		"a.":                           {"a.", ""},
		"a.jpeg2":                      {"a", ".jpeg2"},
		"a.é":                          {"a.é", ""},
		"a." + strings.Repeat("x", 16): {"a." + strings.Repeat("x", 16), ""},
	} {
		if stem, ext := SplitExt(in); stem != want[0] || ext != want[1] {
			t.Errorf("SplitExt(%q) = %q, %q, want %q, %q", in, stem, ext, want[0], want[1])
		}
	}
}

func TestTruncateFileName(t *testing.T) {
	for _, tt := range []struct {
		in   string
		max  int
		want string
	}{
		{"a-.png", 150, "a-.png"}, // fits: as it is
		{"abcdef.png", 8, "abcd.png"},
		{"ab-_cdef.png", 8, "ab.png"},
		{"-_cdef.png", 6, "-_cdef"},        // nothing left of the stem: the whole name is cut
		{"é.000", 5, "é.00"},               // likewise
		{"-----.png", 4, "file"},           // and nothing left at all
		{"abc.verylongext", 8, "abc.very"}, // the extension does not fit
		{"ééé.png", 9, "éé.png"},
		{"éé.png", 6, "é.png"},
	} {
		if got := TruncateFileName(tt.in, tt.max); got != tt.want {
			t.Errorf("TruncateFileName(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestKeySegment(t *testing.T) {
	for _, tt := range []struct {
		in   string
		max  int
		want string
	}{
		{"req-42", 48, "req-42"},
		{"key/with/slashes", 8, "key_with"},
		{"../../x", 48, "_.._x"},
		{".hidden", 48, "hidden"},
		{"...", 48, "h"},
		{"", 48, "h"},
		{"é b", 48, "__b"}, // one '_' a character
		{"a\xffb", 48, "a_b"},
		{"msg.123@mail.example.com", 48, "msg.123_mail.example.com"},
		{strings.Repeat("z", 60), 48, strings.Repeat("z", 48)},
	} {
		if got := KeySegment(tt.in, tt.max); got != tt.want {
			t.Errorf("KeySegment(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

// Properties every name holds, whatever came in.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{"../x", "a/b\\c", ".", "\x00", "é.glb", "a\u202e.exe", strings.Repeat("x", 400)} {
		f.Add(s, 100)
	}
	f.Fuzz(func(t *testing.T, in string, max int) {
		max = 4 + (max&0xff)%200
		got := FileName(in, max)
		if got == "" || len(got) > max || !utf8.ValidString(got) {
			t.Fatalf("FileName(%q, %d) = %q", in, max, got)
		}
		if strings.ContainsAny(got, "/\\ ") || strings.HasPrefix(got, ".") || strings.HasPrefix(got, "-") {
			t.Fatalf("FileName(%q, %d) = %q is not a safe segment", in, max, got)
		}
		k := KeySegment(in, max)
		if k == "" || len(k) > max || strings.HasPrefix(k, ".") || strings.Trim(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != "" {
			t.Fatalf("KeySegment(%q, %d) = %q", in, max, k)
		}
	})
}
