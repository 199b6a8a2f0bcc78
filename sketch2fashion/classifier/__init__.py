"""The sketch classifier behind `category=auto`: which garment category a shopper drew.

Import the submodules directly (`from sketch2fashion.classifier.model import predict_category`);
this file stays empty so that importing the registry helpers does not load the training code.
"""
