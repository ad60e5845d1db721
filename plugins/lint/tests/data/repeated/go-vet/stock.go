package stock

import "fmt"

// Describe says how many items of each kind are left.
func Describe(apples, pears int, name string) []string {
	var lines []string
	lines = append(lines, fmt.Sprintf("%s items", apples))
	lines = append(lines, fmt.Sprintf("%s items", pears))
	lines = append(lines, fmt.Sprintf("%d left of %s", name))
	fmt.Printf("%s items\n", apples)
	if len(lines) > 2 {
		lines = append(lines, fmt.Sprintf("%s items", apples))
	}
	return lines
}
