package dns

// SetResolvConf makes SystemServer read path and returns what undoes it.
func SetResolvConf(path string) (undo func()) {
	old := resolvConf
	resolvConf = path
	return func() { resolvConf = old }
}
