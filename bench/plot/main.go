// Plot draws the charts of BENCHMARKS.md as PNG with gonum.org/v1/plot: for each group (a
// piece of work) one bar per series at the median of its values, every value drawn as a dot
// on it, so the spread of the repetitions shows beside the median.
//
//	plot -o FILE.png -title TITLE -y YLABEL [-ref Y] [-labels FORMAT] < DATA
//
// DATA has one value a line: group<TAB>series<TAB>value, one line per repetition. A line
// whose series is "goal" draws the group's goal as a short red line instead of a bar. A "\n"
// (backslash, n) in a group's name breaks its label. -ref draws a dashed line across at Y (1
// in a chart of ratios: the floor); -labels writes each median above its bar with FORMAT.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// data is what DATA holds: groups and series in the order they first appear.
type data struct {
	groups, series []string
	values         map[[2]string][]float64 // by group and series
	goals          map[string]float64
}

func read(r io.Reader) (*data, error) {
	d := &data{values: map[[2]string][]float64{}, goals: map[string]float64{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want group<TAB>series<TAB>value, got %q", n, sc.Text())
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		g := strings.ReplaceAll(f[0], `\n`, "\n")
		if !slices.Contains(d.groups, g) {
			d.groups = append(d.groups, g)
		}
		if f[1] == "goal" {
			d.goals[g] = v
			continue
		}
		if !slices.Contains(d.series, f[1]) {
			d.series = append(d.series, f[1])
		}
		d.values[[2]string{g, f[1]}] = append(d.values[[2]string{g, f[1]}], v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(d.series) == 0 {
		return nil, fmt.Errorf("no values")
	}
	return d, nil
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bars is a plotter of rectangles in data coordinates, from y 0 to each bar's height.
type bars struct {
	x0, x1, y []float64
	color     color.Color
}

func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i := range b.y {
		pts := []vg.Point{
			{X: trX(b.x0[i]), Y: trY(0)}, {X: trX(b.x1[i]), Y: trY(0)},
			{X: trX(b.x1[i]), Y: trY(b.y[i])}, {X: trX(b.x0[i]), Y: trY(b.y[i])},
		}
		c.FillPolygon(b.color, c.ClipPolygonXY(pts))
		outline := append(pts, pts[0])
		c.StrokeLines(draw.LineStyle{Color: color.Black, Width: vg.Points(0.5)}, c.ClipLinesXY(outline)...)
	}
}

func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	return slices.Min(b.x0), slices.Max(b.x1), 0, slices.Max(b.y)
}

func (b *bars) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y}}
	c.FillPolygon(b.color, pts)
}

func run(d *data, out, title, ylabel, labelFormat string, ref float64) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	p.NominalX(d.groups...)
	p.X.Min, p.X.Max = -0.6, float64(len(d.groups))-0.4
	p.Legend.Top = true
	p.Y.Padding, p.X.Padding = 0, 0

	width := 0.8 / float64(len(d.series))
	var dots plotter.XYs
	var labels plotter.XYLabels
	top := 0.0
	for s, name := range d.series {
		b := &bars{color: plotutil.Color(s)}
		for g, group := range d.groups {
			v := d.values[[2]string{group, name}]
			if len(v) == 0 {
				continue
			}
			x0 := float64(g) - 0.4 + float64(s)*width
			m := median(v)
			b.x0, b.x1, b.y = append(b.x0, x0+0.05*width), append(b.x1, x0+0.95*width), append(b.y, m)
			for _, y := range v {
				dots = append(dots, plotter.XY{X: x0 + width/2, Y: y})
				top = max(top, y)
			}
			if labelFormat != "" {
				labels.XYs = append(labels.XYs, plotter.XY{X: x0 + width/2, Y: slices.Max(v)})
				labels.Labels = append(labels.Labels, fmt.Sprintf(labelFormat, m))
			}
		}
		if len(b.y) == 0 {
			continue
		}
		p.Add(b)
		p.Legend.Add(name, b)
	}
	sc, err := plotter.NewScatter(dots)
	if err != nil {
		return err
	}
	sc.GlyphStyle = draw.GlyphStyle{Color: color.Black, Radius: vg.Points(1.8), Shape: draw.CircleGlyph{}}
	p.Add(sc)
	p.Legend.Add("each repetition", sc)
	for g, group := range d.groups {
		goal, ok := d.goals[group]
		if !ok {
			continue
		}
		l, err := plotter.NewLine(plotter.XYs{{X: float64(g) - 0.45, Y: goal}, {X: float64(g) + 0.45, Y: goal}})
		if err != nil {
			return err
		}
		l.LineStyle = draw.LineStyle{Color: color.RGBA{R: 200, A: 255}, Width: vg.Points(1.5)}
		p.Add(l)
		if g == firstGoal(d) {
			p.Legend.Add("goal", l)
		}
		top = max(top, goal)
	}
	if labelFormat != "" {
		lb, err := plotter.NewLabels(labels)
		if err != nil {
			return err
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].XAlign = draw.XCenter
			lb.Offset = vg.Point{Y: vg.Points(4)}
		}
		p.Add(lb)
	}
	if ref > 0 {
		f := plotter.NewFunction(func(float64) float64 { return ref })
		f.LineStyle = draw.LineStyle{Color: color.Gray{Y: 100}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
		p.Add(f)
		top = max(top, ref)
	}
	// Room above the highest dot for the labels and the legend.
	p.Y.Max = top * 1.3
	return p.Save(vg.Length(110+70*len(d.groups))*vg.Millimeter/vg.Length(2), 110*vg.Millimeter, out)
}

func firstGoal(d *data) int {
	for g, group := range d.groups {
		if _, ok := d.goals[group]; ok {
			return g
		}
	}
	return -1
}

func main() {
	out := flag.String("o", "", "write the PNG to this file")
	title := flag.String("title", "", "title")
	ylabel := flag.String("y", "", "label of the y axis")
	ref := flag.Float64("ref", 0, "draw a dashed line across at this y (0: none)")
	labelFormat := flag.String("labels", "", "write each median above its bar with this format (e.g. %.2f×)")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: plot -o FILE.png [-title T] [-y LABEL] [-ref Y] [-labels FORMAT] < DATA")
		os.Exit(2)
	}
	d, err := read(os.Stdin)
	if err == nil {
		err = run(d, *out, *title, *ylabel, *labelFormat, *ref)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plot: error:", err)
		os.Exit(1)
	}
}
