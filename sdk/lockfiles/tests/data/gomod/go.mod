module example.com/sluice-fixture

go 1.19

require (
	github.com/pkg/errors v0.9.1
	golang.org/x/text v0.7.0
)
