package objstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/figurative/figsupport/internal/text"
)

// MaxNameBytes caps a stored file name (the extension is kept when the stem is shortened).
const MaxNameBytes = 150

// SanitizeName turns a customer-supplied file name into one safe as the last segment of an
// object key and of a local path: no directory part, no "..", no control or bidi-override
// characters, no leading dot, nothing a URL or a file system treats specially, at most
// MaxNameBytes bytes. An empty result becomes "file". See text.FileName.
func SanitizeName(name string) string {
	return text.FileName(name, MaxNameBytes)
}

// uniqueNames sanitises names and makes them unique within one request, case-insensitively (a
// local store may sit on a case-insensitive file system): the second "a.jpg" becomes "a-2.jpg".
// The result depends only on the list, so a retry computes the same keys.
func uniqueNames(names []string) []string {
	out := make([]string, len(names))
	taken := make(map[string]bool, len(names))
	for i, n := range names {
		n = SanitizeName(n)
		if taken[strings.ToLower(n)] {
			stem, ext := text.SplitExt(n)
			for k := 2; ; k++ {
				suffix := fmt.Sprintf("-%d", k)
				c := text.TruncateFileName(stem, MaxNameBytes-len(ext)-len(suffix)) + suffix + ext
				if !taken[strings.ToLower(c)] {
					n = c
					break
				}
			}
		}
		taken[strings.ToLower(n)] = true
		out[i] = n
	}
	return out
}

// keySegment makes a request key usable as one key segment: ASCII letters, digits, '.', '_' and
// '-' (others '-', runs of '-' as one). When anything had to change, a short hash of the original
// is appended so that two keys that differ only in replaced characters never share a prefix (and
// never overwrite each other's files). It is not text.KeySegment (which names spool directories):
// the object keys it makes are part of the public contract and must not change.
func keySegment(s string) string {
	var b strings.Builder
	for _, r := range s {
		c := byte('-')
		if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-') {
			c = byte(r)
		}
		if c == '-' && strings.HasSuffix(b.String(), "-") {
			continue
		}
		b.WriteByte(c)
	}
	clean := strings.TrimLeft(b.String(), ".-")
	if len(clean) > 80 {
		clean = clean[:80]
	}
	if clean == s && s != "" {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	h := hex.EncodeToString(sum[:4])
	if clean == "" {
		return "k-" + h
	}
	return strings.TrimRight(clean, ".-") + "-" + h
}

// RequestPrefix is the key prefix of a request's files: requests/<yyyy>/<mm>/<request-key>/.
func RequestPrefix(requestKey string, at time.Time) string {
	at = at.UTC()
	return fmt.Sprintf("requests/%04d/%02d/%s/", at.Year(), int(at.Month()), keySegment(requestKey))
}

// Keys are the object keys Upload will use for these file names, in order; `--dry-run` prints them.
func Keys(prefix string, names []string) []string {
	u := uniqueNames(names)
	for i := range u {
		u[i] = prefix + u[i]
	}
	return u
}

// 3D formats: known by their extension only, since sniffing cannot tell them from text or zip files.
var types3D = map[string]string{
	".glb":   "model/gltf-binary",
	".gltf":  "model/gltf+json",
	".usdz":  "model/vnd.usdz+zip",
	".usd":   "model/vnd.usd",
	".usda":  "model/vnd.usda",
	".usdc":  "model/vnd.usd",
	".obj":   "model/obj",
	".mtl":   "model/mtl",
	".stl":   "model/stl",
	".3mf":   "model/3mf",
	".ply":   "application/ply",
	".fbx":   "application/vnd.autodesk.fbx",
	".dae":   "model/vnd.collada+xml",
	".3ds":   "application/x-3ds",
	".blend": "application/x-blender",
	".step":  "model/step",
	".stp":   "model/step",
	".iges":  "model/iges",
	".igs":   "model/iges",
}

// Common types, here rather than from mime.TypeByExtension, whose table differs from machine to machine.
var extTypes = map[string]string{
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".png":  "image/png",
	".gif":  "image/gif",
	".webp": "image/webp",
	".heic": "image/heic",
	".heif": "image/heif",
	".avif": "image/avif",
	".tif":  "image/tiff",
	".tiff": "image/tiff",
	".bmp":  "image/bmp",
	".pdf":  "application/pdf",
	".zip":  "application/zip",
	".mp4":  "video/mp4",
	".mov":  "video/quicktime",
	".webm": "video/webm",
	".txt":  "text/plain; charset=utf-8",
	".csv":  "text/csv; charset=utf-8",
	".json": "application/json",
	".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}

// Types a browser would run as a page or script if the public bucket served them as such: a
// customer's file must never execute on our domain, so they are stored as plain text.
var activeTypes = map[string]bool{
	"text/html":                true,
	"application/xhtml+xml":    true,
	"image/svg+xml":            true,
	"text/xml":                 true,
	"application/xml":          true,
	"text/javascript":          true,
	"application/javascript":   true,
	"application/x-javascript": true,
	"text/css":                 true,
}

// generic sniffing answers carry no information beyond "text", "binary" or "some zip".
func genericSniff(t string) bool {
	mt, _, _ := mime.ParseMediaType(t)
	switch mt {
	case "", "application/octet-stream", "text/plain", "application/zip":
		return true
	}
	return false
}

// DetectContentType chooses the stored Content-Type from the file name, the first bytes and the
// server's own claim (hint, may be empty): 3D extensions win (sniffing cannot recognise them), then
// what the bytes say when it is specific, then the extension, then the server, then the sniff.
func DetectContentType(name string, head []byte, hint string) string {
	ext := strings.ToLower(path.Ext(name))
	t := func() string {
		if et, ok := types3D[ext]; ok {
			return et
		}
		sniff := http.DetectContentType(head)
		if !genericSniff(sniff) {
			return sniff
		}
		if et, ok := extTypes[ext]; ok {
			return et
		}
		if ext != "" {
			if et := mime.TypeByExtension(ext); et != "" {
				return et
			}
		}
		if hint != "" {
			return hint
		}
		return sniff
	}()
	mt, _, err := mime.ParseMediaType(t)
	if err != nil {
		return "application/octet-stream"
	}
	if activeTypes[mt] {
		return "text/plain; charset=utf-8"
	}
	return t
}
