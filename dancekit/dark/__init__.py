"""dark"""
