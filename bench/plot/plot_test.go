package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadAndDraw(t *testing.T) {
	in := "convert\\ndurable\tmaildirmig\t2.0\nconvert\\ndurable\tmaildirmig\t2.2\nconvert\\ndurable\tmaildirmig\t2.1\n" +
		"convert\\ndurable\tfloor\t1.0\nconvert\\ndurable\tgoal\t1.2\nnone\tmaildirmig\t1.0\nnone\tfloor\t0.5\n"
	d, err := read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.groups) != 2 || d.groups[0] != "convert\ndurable" || len(d.series) != 2 {
		t.Fatalf("groups %q, series %q", d.groups, d.series)
	}
	if m := median(d.values[[2]string{"convert\ndurable", "maildirmig"}]); m != 2.1 {
		t.Errorf("median %v, want 2.1", m)
	}
	if d.goals["convert\ndurable"] != 1.2 {
		t.Errorf("goals %v", d.goals)
	}
	out := filepath.Join(t.TempDir(), "x.png")
	if err := run(d, out, "title", "seconds", "%.2f", 1); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 200 {
		t.Errorf("image of %v", b)
	}
}

func TestReadRefuses(t *testing.T) {
	for _, in := range []string{"", "a\tb\n", "a\tb\tx\n"} {
		if _, err := read(strings.NewReader(in)); err == nil {
			t.Errorf("read(%q) gave no error", in)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{3, 1}, 2}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.v); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.v, got, c.want)
		}
	}
}
