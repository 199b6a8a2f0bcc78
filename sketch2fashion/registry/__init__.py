"""The MLflow side of the colorizer: tracking store, pyfunc model flavor, registry and champions.

Import the submodules directly (`from sketch2fashion.registry.promotion import champion`);
this package file stays empty of imports so that `import sketch2fashion.registry.tracking`
does not also pull in torch.
"""
