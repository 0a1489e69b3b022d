package objstore

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestSanitizeName(t *testing.T) {
	long := strings.Repeat("a", 300) + ".glb"
	longAccents := strings.Repeat("é", 200) + ".jpeg"
	tests := []struct {
		in, want string
	}{
		{"photo.jpg", "photo.jpg"},
		{"../../etc/passwd", "passwd"},
		{`..\..\windows\win.ini`, "win.ini"},
		{"C:\\Users\\jean\\Desktop\\scan.stl", "scan.stl"},
		{"dir/", "file"},
		{"", "file"},
		{"   ", "file"},
		{"..", "file"},
		{"...", "file"},
		{".htaccess", "htaccess"},
		{"..hidden.png", "hidden.png"},
		{"a\x00b\nc\td.jpg", "abcd.jpg"},
		{"\x1b[31mred.png", "31mred.png"},
		{"invoice\u202Egpj.exe", "invoicegpj.exe"}, // right-to-left override dropped
		{"zero\u200bwidth.png", "zerowidth.png"},
		{"my photo (1).jpg", "my_photo_(1).jpg"},
		{"a?b#c%d&e=f.png", "a_b_c_d_e_f.png"},
		{"quote\"s'<>|*:.obj", "quote_s_.obj"},
		{"Mode\u0300le 3D.usdz", "Modèle_3D.usdz"}, // NFD in, NFC out
		{"trailing dots...", "trailing_dots"},
		{"---x---.png", "x---.png"},
		{"photo.JPG", "photo.JPG"},
		{"\xff\xfebad.png", "bad.png"},
		{"日本語のファイル.png", "日本語のファイル.png"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := SanitizeName(tt.in); got != tt.want {
				t.Fatalf("SanitizeName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	t.Run("long names keep their extension", func(t *testing.T) {
		for _, in := range []string{long, longAccents} {
			got := SanitizeName(in)
			if len(got) > MaxNameBytes || !utf8.ValidString(got) {
				t.Fatalf("%d bytes, valid %v", len(got), utf8.ValidString(got))
			}
			if !strings.HasSuffix(got, in[strings.LastIndexByte(in, '.'):]) {
				t.Fatalf("%q lost its extension", got)
			}
		}
	})
}

// Properties every sanitised name holds, whatever came in.
func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"../x", "a/b\\c", ".", "\x00", "é.glb", strings.Repeat("x", 400)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SanitizeName(in)
		if got == "" || len(got) > MaxNameBytes || !utf8.ValidString(got) {
			t.Fatalf("SanitizeName(%q) = %q", in, got)
		}
		if strings.ContainsAny(got, "/\\") || strings.HasPrefix(got, ".") || got == ".." {
			t.Fatalf("SanitizeName(%q) = %q is not a safe segment", in, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("SanitizeName(%q) = %q keeps a control character", in, got)
			}
		}
	})
}

func TestUniqueNames(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{[]string{"a.jpg", "b.jpg"}, []string{"a.jpg", "b.jpg"}},
		{[]string{"a.jpg", "a.jpg", "a.jpg"}, []string{"a.jpg", "a-2.jpg", "a-3.jpg"}},
		{[]string{"a.jpg", "A.JPG"}, []string{"a.jpg", "A-2.JPG"}},
		{[]string{"a.jpg", "a-2.jpg", "a.jpg"}, []string{"a.jpg", "a-2.jpg", "a-3.jpg"}},
		{[]string{"../x.png", "x.png", "dir/x.png"}, []string{"x.png", "x-2.png", "x-3.png"}},
		{[]string{"", "", "."}, []string{"file", "file-2", "file-3"}},
		{[]string{"README", "README"}, []string{"README", "README-2"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, ","), func(t *testing.T) {
			if got := uniqueNames(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("uniqueNames(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	t.Run("long duplicates stay under the cap", func(t *testing.T) {
		n := strings.Repeat("b", 200) + ".stl"
		got := uniqueNames([]string{n, n})
		if got[0] == got[1] || len(got[1]) > MaxNameBytes || !strings.HasSuffix(got[1], "-2.stl") {
			t.Fatalf("got %q", got)
		}
	})
}

func TestRequestPrefix(t *testing.T) {
	at := time.Date(2026, 3, 9, 23, 30, 0, 0, time.FixedZone("x", -5*3600)) // 2026-03-10 in UTC
	tests := []struct {
		key, want string
	}{
		{"req-42", "requests/2026/03/req-42/"},
		{"h-0123abcd", "requests/2026/03/h-0123abcd/"},
		{"a/b", "requests/2026/03/a-b-" + keySegment("a/b")[4:] + "/"},
		{"../../x", "requests/2026/03/" + keySegment("../../x") + "/"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := RequestPrefix(tt.key, at); got != tt.want {
				t.Fatalf("RequestPrefix(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestKeySegment(t *testing.T) {
	seen := map[string]string{}
	for _, k := range []string{"abc", "a/b", "a?b", "a b", "../a/b", "", "é", ".hidden", strings.Repeat("z", 200), strings.Repeat("z", 201)} {
		s := keySegment(k)
		if s == "" || strings.ContainsAny(s, "/\\ ?") || strings.HasPrefix(s, ".") || len(s) > 90 {
			t.Fatalf("keySegment(%q) = %q", k, s)
		}
		if prev, ok := seen[s]; ok {
			t.Fatalf("keySegment(%q) = keySegment(%q) = %q", k, prev, s)
		}
		seen[s] = k
	}
	if keySegment("abc") != "abc" {
		t.Fatal("a clean key must stay as it is")
	}
}

func TestDetectContentType(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	zip := []byte("PK\x03\x04\x14\x00\x00\x00")
	tests := []struct {
		name string
		head []byte
		hint string
		want string
	}{
		{"a.jpg", jpegHead, "", "image/jpeg"},
		{"a.jpg", png, "", "image/png"}, // the bytes win over a wrong extension
		{"a.glb", []byte("glTF\x02\x00\x00\x00"), "", "model/gltf-binary"},
		{"a.gltf", []byte(`{"asset":{"version":"2.0"}}`), "", "model/gltf+json"},
		{"a.usdz", zip, "", "model/vnd.usdz+zip"},
		{"a.obj", []byte("v 0 0 0\nf 1 2 3\n"), "", "model/obj"},
		{"a.STL", []byte("solid cube\n"), "", "model/stl"},
		{"a.3mf", zip, "", "model/3mf"},
		{"a.fbx", []byte("Kaydara FBX Binary  \x00"), "", "application/vnd.autodesk.fbx"},
		{"a.zip", zip, "", "application/zip"},
		{"a.docx", zip, "", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
		{"a.pdf", []byte("%PDF-1.4"), "", "application/pdf"},
		{"noext", png, "", "image/png"},
		{"noext", []byte{0, 1, 2, 3}, "", "application/octet-stream"},
		{"noext", []byte{0, 1, 2, 3}, "model/stl", "model/stl"},
		{"notes.txt", []byte("hello"), "", "text/plain; charset=utf-8"},
		{"empty.bin", nil, "", "application/octet-stream"},
		{"empty", nil, "", "text/plain; charset=utf-8"},
		// Active content is never served as such from the public bucket.
		{"x.html", []byte("<html><script>alert(1)</script>"), "", "text/plain; charset=utf-8"},
		{"x.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>`), "", "text/plain; charset=utf-8"},
		{"x.jpg", []byte("<!DOCTYPE html><html>"), "", "text/plain; charset=utf-8"},
		{"x", []byte("plain"), "text/html", "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.want, func(t *testing.T) {
			if got := DetectContentType(tt.name, tt.head, tt.hint); got != tt.want {
				t.Fatalf("DetectContentType(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}
