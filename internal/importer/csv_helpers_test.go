package importer_test

import (
	"encoding/csv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dirsync/dirsync/internal/graphsim"
)

func parseCSV(t *testing.T, body string) [][]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err)
	return rows
}

// graphsim0 is an emulator without throttling or faults.
func graphsim0() graphsim.Config { return graphsim.Config{DisableThrottling: true, Seed: 3} }
