// Package migrate applies a component's schema steps, the same way on SQLite and PostgreSQL:
// each database package opens the transaction and takes whatever lock it needs around Apply.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Apply applies in tx the steps of component that are not applied yet and records its new
// version in schema_migrations; rebind turns the `?` placeholders into the database's (nil: as
// written). Steps are append-only: never edit one that has shipped. It reports whether it wrote
// anything: when the schema is up to date, nothing is, so that a database opened read-only (dry
// runs) opens too, and the transaction need not be committed.
func Apply(ctx context.Context, tx *sql.Tx, component string, steps []string, rebind func(string) string) (bool, error) {
	if rebind == nil {
		rebind = func(q string) string { return q }
	}
	var v int
	err := tx.QueryRowContext(ctx, rebind(`SELECT version FROM schema_migrations WHERE component = ?`), component).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("migrate %s: %w", component, err)
	}
	if v > len(steps) {
		return false, fmt.Errorf("migrate %s: database schema version %d is newer than this binary's %d", component, v, len(steps))
	}
	if v == len(steps) {
		return false, nil
	}
	for i := v; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return false, fmt.Errorf("migrate %s to version %d: %w", component, i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, rebind(`INSERT INTO schema_migrations(component, version) VALUES(?, ?)
		ON CONFLICT(component) DO UPDATE SET version = excluded.version`), component, len(steps)); err != nil {
		return false, fmt.Errorf("migrate %s: %w", component, err)
	}
	return true, nil
}
