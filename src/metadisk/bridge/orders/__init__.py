"""Order limits the bridge signs for farmers, and the checks on the receipts they sign back."""
