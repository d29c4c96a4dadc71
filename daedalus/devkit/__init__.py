"""Developer tooling apart from the product: fake exchanges, synthetic data, the capture loader,
`daedalus demo` and `daedalus bench`."""
