// Plot draws the line charts of BENCHMARKS.md as PNG, with the standard library only.
//
//	go run ./bench/plot -o FILE.png -title TITLE -x XLABEL -y YLABEL [-logx] [-xticks 1,2,4] < DATA
//
// DATA has one point a line: series<TAB>x<TAB>y. Each series is a line of its own colour,
// named in the legend; the axes start at zero (x at its smallest value with -logx). Text is
// drawn with a 3x5 pixel font scaled up: letters (in one case), digits and a few signs.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strconv"
	"strings"
)

// glyphs are 3x5 bitmaps, five rows of three pixels each.
var glyphs = map[rune]string{
	'0': "111101101101111", '1': "010110010010111", '2': "111001111100111", '3': "111001111001111",
	'4': "101101111001001", '5': "111100111001111", '6': "111100111101111", '7': "111001010010010",
	'8': "111101111101111", '9': "111101111001111", 'a': "010101111101101", 'b': "110101110101110",
	'c': "011100100100011", 'd': "110101101101110", 'e': "111100110100111", 'f': "111100110100100",
	'g': "011100101101011", 'h': "101101111101101", 'i': "111010010010111", 'j': "001001001101010",
	'k': "101101110101101", 'l': "100100100100111", 'm': "101111111101101", 'n': "110101101101101",
	'o': "010101101101010", 'p': "110101110100100", 'q': "010101101110011", 'r': "110101110101101",
	's': "011100010001110", 't': "111010010010010", 'u': "101101101101111", 'v': "101101101101010",
	'w': "101101111111101", 'x': "101101010101101", 'y': "101101010010010", 'z': "111001010100111",
	'.': "000000000000010", '-': "000000111000000", '=': "000111000111000", '/': "001001010100100",
	',': "000000000010100", '(': "010100100100010", ')': "010001001001010", '&': "010101010101011",
	'%': "101001010100101", ':': "000010000010000", '*': "000101010101000", '>': "100010001010100",
	'<': "001010100010001", '+': "000010111010000",
}

const scale = 2

type canvas struct{ *image.RGBA }

func (c canvas) dot(x, y int, col color.Color, r int) {
	for dx := -r; dx <= r; dx++ {
		for dy := -r; dy <= r; dy++ {
			c.Set(x+dx, y+dy, col)
		}
	}
}

func (c canvas) line(x0, y0, x1, y1 int, col color.Color, r int) {
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		c.dot(x0+(x1-x0)*i/n, y0+(y1-y0)*i/n, col, r)
	}
}

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
}

// text draws s with its top left corner at x, y and returns its width.
func (c canvas) text(x, y int, s string, col color.Color) int {
	x0 := x
	for _, r := range strings.ToLower(s) {
		if g, ok := glyphs[r]; ok {
			for i, b := range g {
				if b == '1' {
					for dx := range scale {
						for dy := range scale {
							c.Set(x+(i%3)*scale+dx, y+(i/3)*scale+dy, col)
						}
					}
				}
			}
		}
		x += 4 * scale
	}
	return x - x0
}

func textWidth(s string) int { return len([]rune(s)) * 4 * scale }

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xff, 0x7f, 0x0e, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
}

type point struct{ x, y float64 }

// ticks returns round tick values from 0 (or lo) to at least hi.
func ticks(lo, hi float64, log bool) []float64 {
	if log {
		var t []float64
		for v := math.Pow(10, math.Floor(math.Log10(lo))); v <= hi*1.0001; v *= 10 {
			for _, m := range []float64{1, 2, 5} {
				if v*m >= lo*0.9999 && v*m <= hi*1.0001 {
					t = append(t, v*m)
				}
			}
		}
		return t
	}
	step := math.Pow(10, math.Floor(math.Log10(hi/4)))
	for hi/step > 6 {
		if hi/(step*2) <= 6 {
			step *= 2
		} else {
			step *= 5
		}
	}
	var t []float64
	for v := 0.0; v < hi+step*0.999; v += step {
		t = append(t, v)
	}
	return t
}

func label(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func main() {
	out := flag.String("o", "", "PNG file to write")
	title := flag.String("title", "", "chart title")
	xl := flag.String("x", "", "x axis label")
	yl := flag.String("y", "", "y axis label")
	logx := flag.Bool("logx", false, "logarithmic x axis")
	xticks := flag.String("xticks", "", "comma-separated x values to mark, instead of round ones")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "plot: error: -o is required")
		os.Exit(2)
	}
	var names []string
	series := map[string][]point{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			continue
		}
		x, err1 := strconv.ParseFloat(f[1], 64)
		y, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil || *logx && x <= 0 {
			continue
		}
		if _, ok := series[f[0]]; !ok {
			names = append(names, f[0])
		}
		series[f[0]] = append(series[f[0]], point{x, y})
	}
	if len(names) == 0 {
		fmt.Fprintln(os.Stderr, "plot: error: no points on stdin")
		os.Exit(1)
	}
	xmin, xmax, ymax := math.Inf(1), 0.0, 0.0
	for _, ps := range series {
		for _, p := range ps {
			xmin, xmax, ymax = min(xmin, p.x), max(xmax, p.x), max(ymax, p.y)
		}
	}
	if !*logx {
		xmin = 0
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	xt, yt := ticks(xmin, xmax, *logx), ticks(0, ymax, false)
	if *xticks != "" {
		xt = nil
		for _, f := range strings.Split(*xticks, ",") {
			if v, err := strconv.ParseFloat(f, 64); err == nil {
				xt = append(xt, v)
			}
		}
	}
	if !*logx {
		xmax = xt[len(xt)-1]
	}
	ymax = yt[len(yt)-1]

	const W, H, left, right, top, bottom = 900, 560, 80, 30, 50, 70
	img := canvas{image.NewRGBA(image.Rect(0, 0, W, H))}
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	black, grey := color.RGBA{0, 0, 0, 0xff}, color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	px := func(x float64) int {
		f := (x - xmin) / (xmax - xmin)
		if *logx {
			f = math.Log(x/xmin) / math.Log(xmax/xmin)
		}
		return left + int(f*float64(W-left-right))
	}
	py := func(y float64) int { return H - bottom - int(y/ymax*float64(H-top-bottom)) }
	for _, v := range yt {
		img.line(left, py(v), W-right, py(v), grey, 0)
		s := label(v)
		img.text(left-8-textWidth(s), py(v)-5, s, black)
	}
	for _, v := range xt {
		img.line(px(v), top, px(v), H-bottom, grey, 0)
		s := label(v)
		img.text(px(v)-textWidth(s)/2, H-bottom+8, s, black)
	}
	img.line(left, H-bottom, W-right, H-bottom, black, 0)
	img.line(left, top, left, H-bottom, black, 0)
	img.text((W-textWidth(*title))/2, 15, *title, black)
	img.text((W-textWidth(*xl))/2, H-bottom+30, *xl, black)
	img.text(8, top-25, *yl, black)
	for i, name := range names {
		col := palette[i%len(palette)]
		ps := series[name]
		for j, p := range ps {
			img.dot(px(p.x), py(p.y), col, 3)
			if j > 0 {
				img.line(px(ps[j-1].x), py(ps[j-1].y), px(p.x), py(p.y), col, 1)
			}
		}
		lx, ly := left+15, top+10+i*16
		img.line(lx, ly+5, lx+20, ly+5, col, 1)
		img.text(lx+28, ly, name, black)
	}
	f, err := os.Create(*out)
	if err == nil {
		err = png.Encode(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "plot: error:", err)
		os.Exit(1)
	}
}
