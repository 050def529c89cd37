package warehouse_test

import (
	"strings"
	"testing"

	"github.com/vigilhq/vigil/warehouse"
)

func TestMigrationsRender(t *testing.T) {
	tests := []struct {
		name       string
		opts       warehouse.SchemaOptions
		want       []string
		wantAbsent []string
	}{
		{
			name:       "single server",
			opts:       warehouse.SchemaOptions{},
			want:       []string{"ENGINE = ReplacingMergeTree(stream_seq)", "CREATE TABLE IF NOT EXISTS messages"},
			wantAbsent: []string{"ON CLUSTER", "Replicated", "{{", "--"},
		},
		{
			name:       "cluster",
			opts:       warehouse.SchemaOptions{OnCluster: "prod"},
			want:       []string{"ON CLUSTER `prod`", "ENGINE = ReplicatedReplacingMergeTree(stream_seq)"},
			wantAbsent: []string{"ENGINE = ReplacingMergeTree", "{{"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			migs, err := warehouse.Migrations(tc.opts)
			if err != nil {
				t.Fatalf("Migrations(%+v) = %v", tc.opts, err)
			}
			if len(migs) < 2 {
				t.Fatalf("got %d migrations, want at least 2", len(migs))
			}
			var all strings.Builder
			for i, m := range migs {
				if m.Version != i+1 {
					t.Errorf("migration %d has version %d, want %d (gap or duplicate)", i, m.Version, i+1)
				}
				for _, s := range m.Statements {
					if strings.HasSuffix(strings.TrimSpace(s), ";") {
						t.Errorf("statement ends in ';' (multi-statement risk): %.60s", s)
					}
					all.WriteString(s)
					all.WriteString("\n")
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(all.String(), w) {
					t.Errorf("rendered schema lacks %q", w)
				}
			}
			for _, w := range tc.wantAbsent {
				if strings.Contains(all.String(), w) {
					t.Errorf("rendered schema contains %q", w)
				}
			}
		})
	}
}

func TestMigrationChecksumIgnoresCluster(t *testing.T) {
	a, err := warehouse.Migrations(warehouse.SchemaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := warehouse.Migrations(warehouse.SchemaOptions{OnCluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i].Checksum != b[i].Checksum {
			t.Errorf("migration %d checksum differs between single server and cluster", a[i].Version)
		}
	}
}
