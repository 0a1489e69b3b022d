package cmd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/text"
)

type uploadOptions struct {
	*Globals
	Sources []string // local files or http(s) URLs
}

func newUploadCmd(g *Globals, runF func(context.Context, *uploadOptions) error) *cobra.Command {
	o := &uploadOptions{Globals: g}
	return &cobra.Command{
		Use:   "upload FILE|URL…",
		Short: "Store files in the object store and print their public URLs",
		Long: `Stores local files or http(s) URLs (fetched safely: public addresses only, size-capped) under
manual/<yyyy>/<mm>/<random>/ in the object store, and prints one URL per line (or JSON). A missing
local file, one over FIGSUPPORT_MAX_FILE_BYTES or a URL that is not http(s) is bad input (exit 2),
found before anything is stored. On a terminal, a progress bar shows the bytes sent.`,
		Example: `  figsupport upload testdata/files/chaise.glb
  figsupport upload testdata/files/chaise.glb testdata/files/vue-de-face.png -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return argNames("FILE|URL")(cmd, args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Sources = args
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runUpload(cmd.Context(), o)
		},
	}
}

func runUpload(ctx context.Context, o *uploadOptions) error {
	s, err := o.settings()
	if err != nil {
		return err
	}
	sizes, err := checkSources(o.Sources, s.maxFileBytes)
	if err != nil {
		return err
	}
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: true, readOnly: o.DryRun})
	if err != nil {
		return err
	}
	defer a.Close()
	if o.DryRun {
		steps := make([]string, len(o.Sources))
		for i, src := range o.Sources {
			size := "size known once fetched"
			if sizes[i] >= 0 {
				size = text.Bytes(sizes[i])
			}
			steps[i] = fmt.Sprintf("store %s (%s) under manual/%s/<random>/ in %s", src, size, o.Now().UTC().Format("2006/01"), a.target("files"))
		}
		return printSteps(o.Globals, steps)
	}
	files, err := a.uploader.UploadAdhoc(ctx, o.Now(), o.Sources)
	if err != nil {
		return err
	}
	if o.JSON() {
		return writeJSON(o.Out, struct {
			Files []payload.StoredFile `json:"files"`
		}{files})
	}
	for _, f := range files {
		fmt.Fprintln(o.Out, f.URL)
	}
	return nil
}

// checkSources finds bad input before anything is stored: a local file that cannot be read or is
// over the cap, a URL that is not http(s). It returns each local file's size (-1 for a URL).
func checkSources(sources []string, maxBytes int64) ([]int64, error) {
	sizes := make([]int64, len(sources))
	for i, src := range sources {
		sizes[i] = -1
		// As the uploader decides: an http(s) URL, else a local path.
		if u, err := url.Parse(src); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			if u.Host == "" {
				return nil, fieldErr(src, "a URL needs a host")
			}
			continue
		}
		st, err := os.Stat(src)
		switch {
		case err != nil:
			return nil, fieldErr(src, "cannot read: %v", errors.Unwrap(err))
		case !st.Mode().IsRegular():
			return nil, fieldErr(src, "not a regular file")
		case st.Size() > maxBytes:
			return nil, fieldErr(src, "%s, over the %s cap (FIGSUPPORT_MAX_FILE_BYTES)", text.Bytes(st.Size()), text.Bytes(maxBytes))
		}
		sizes[i] = st.Size()
	}
	return sizes, nil
}
