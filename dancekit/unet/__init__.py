"""unet"""
