// Command figsupport turns Figurative's customer requests into HubSpot tickets, R2 files, ClickUp
// subtasks and admin e-mails. See README.md.
package main

import (
	"os"

	"github.com/figurative/figsupport/cmd"
)

func main() { os.Exit(cmd.Execute()) }
