package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

type uploadOptions struct{ g *Globals }

func newUploadCmd(g *Globals) *cobra.Command {
	o := &uploadOptions{g: g}
	return &cobra.Command{
		Use:   "upload FILE|URL…",
		Short: "Store files in the object store and print their public URLs",
		Long: `Stores local files or http(s) URLs (fetched safely: public addresses only, size-capped) under
manual/<yyyy>/<mm>/<random>/ in the object store, and prints one URL per line (or JSON).`,
		Example: `  figsupport upload testdata/files/chaise.glb
  figsupport upload https://example.com/photo.jpg -o json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runUpload(cmd.Context(), o, args) },
	}
}

func runUpload(ctx context.Context, o *uploadOptions, sources []string) error {
	g := o.g
	if g.DryRun {
		return dryRun(g, fmt.Sprintf("upload %d file(s): %v", len(sources), sources))
	}
	a, err := openApp(ctx, g, true)
	if err != nil {
		return err
	}
	defer a.Close()
	files, err := a.uploader.UploadAdhoc(ctx, g.Now(), sources)
	if err != nil {
		return err
	}
	if g.JSON() {
		return writeJSON(g.Out, struct {
			Files any `json:"files"`
		}{files})
	}
	for _, f := range files {
		fmt.Fprintln(g.Out, f.URL)
	}
	return nil
}
