"""photometry"""
